"""No log line carries a credential from a URL: blob signatures, tokens, client secrets, codes, passwords.

The requests go through Django's whole stack, and what the real console handler of settings
``LOGGING`` writes (its filters, then the JSON or the plain formatter) is read back.
"""

import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from deliveries.blobs import blob_signature
from sapien import urls as sapien_urls
from sapien.core.logging import JsonFormatter, RedactCredentialsFilter, redact_credentials


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"could not serve {request.get_full_path()}")


# This module is the URLconf of the request test: Sapien's URLs plus one view that fails with a 500.
urlpatterns = [path("crash", crash), *sapien_urls.urlpatterns]
handler400, handler403 = sapien_urls.handler400, sapien_urls.handler403
handler404, handler500 = sapien_urls.handler404, sapien_urls.handler500

LOGGING: dict[str, Any] = settings.LOGGING  # a dict literal of mixed values: mypy infers dict[str, object]
FORMATTERS = {
    "json": JsonFormatter(),
    "plain": logging.Formatter(LOGGING["formatters"]["plain"]["format"]),
}


@contextmanager
def console_output(formatter: logging.Formatter) -> Iterator[StringIO]:
    """What the console handler of settings ``LOGGING`` writes, with ``formatter``, while the block runs."""
    [console] = [handler for handler in logging.getLogger().handlers if handler.get_name() == "console"]
    assert isinstance(console, logging.StreamHandler)
    buffer = StringIO()
    previous_formatter = console.formatter
    previous_stream = console.setStream(buffer)
    console.setFormatter(formatter)
    try:
        yield buffer
    finally:
        console.setStream(previous_stream)
        console.setFormatter(previous_formatter)


def json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("formatter", ["json", "plain"])
def test_requests_with_credentials_in_their_url_log_none_of_them(caplog, formatter: str) -> None:
    # given a blob link whose genuine signature was kept while its expiry was changed, and other secrets
    blob_id, expires = uuid.uuid4(), int(time.time()) + 3600
    genuine_signature = blob_signature(blob_id, expires)
    access_token, client_secret, query_secret, code = (
        f"{name}-{uuid.uuid4().hex}" for name in ("tok", "cs", "qs", "code")
    )
    secrets = [genuine_signature, access_token, client_secret, query_secret, code]
    caplog.set_level(logging.DEBUG)
    client = Client(raise_request_exception=False)

    # when each request is made
    with console_output(FORMATTERS[formatter]) as output:
        tampered = client.get(f"/api/v1/blobs/{blob_id}", {"expires": str(expires + 1), "signature": genuine_signature})
        unknown = client.get("/api/v1/no-such-thing", {"access_token": access_token})
        in_url = client.get("/api/v1/subscriptions", {"access_token": access_token})
        form = {"grant_type": "client_credentials", "client_id": "no-such-client", "client_secret": client_secret}
        bad_client = client.post("/oauth/token", form)
        secret_in_url = client.post(f"/oauth/token?client_secret={query_secret}", form)
        failed = client.get("/crash", {"code": code, "state": "xyz"})

    # then each was answered and logged
    assert (tampered.status_code, unknown.status_code, in_url.status_code) == (403, 404, 401)
    assert (bad_client.status_code, secret_in_url.status_code, failed.status_code) == (401, 400, 500)
    written = output.getvalue()
    for message in (
        f"Forbidden: /api/v1/blobs/{blob_id}",
        "Not Found: /api/v1/no-such-thing",
        "Unauthorized: /api/v1/subscriptions",
        "Unauthorized: /oauth/token",
        "Bad Request: /oauth/token",
        "Internal Server Error: /crash",
    ):
        assert message in written
    assert "RuntimeError: could not serve /crash?code=[redacted]&state=xyz" in written
    # and no secret is in any line the console wrote, nor in any record as either formatter renders it
    for secret in secrets:
        assert secret not in written
        for record in caplog.records:
            for rendering in FORMATTERS.values():
                assert secret not in rendering.format(record)


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_the_request_of_a_logged_response_keeps_its_path_and_loses_its_credentials() -> None:
    # given a tampered blob link
    blob_id, expires = uuid.uuid4(), int(time.time()) + 3600
    signature = blob_signature(blob_id, expires)

    # when it is refused, with JSON logs
    with console_output(FORMATTERS["json"]) as output:
        response = Client().get(f"/api/v1/blobs/{blob_id}", {"expires": str(expires + 1), "signature": signature})

    # then Django's line for the 403 names the request with every other parameter intact
    assert response.status_code == 403
    [line] = [line for line in json_lines(output.getvalue()) if line["logger"] == "django.request"]
    assert line["message"] == f"Forbidden: /api/v1/blobs/{blob_id}"
    assert line["status_code"] == 403
    assert line["request"] == f"<WSGIRequest: GET '/api/v1/blobs/{blob_id}?expires={expires + 1}&signature=[redacted]'>"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("GET /api/v1/blobs/b1?expires=9&signature=abc HTTP/1.1", "GET /api/v1/blobs/b1?expires=9&signature=[redacted] HTTP/1.1"),
        ("/x?access_token=t1&cursor=c2", "/x?access_token=[redacted]&cursor=c2"),
        ("/cb?code=c1&state=s1", "/cb?code=[redacted]&state=s1"),
        ("/x?a=1&refresh_token=r1;token=t2", "/x?a=1&refresh_token=[redacted];token=[redacted]"),
        ("grant_type=password&username=u&password=p1", "grant_type=password&username=u&password=[redacted]"),
        ("client_id=c&client_secret=s1", "client_id=c&client_secret=[redacted]"),
        ("https://s3/b?X-Amz-Credential=AK%2F1&X-Amz-Signature=f1&X-Amz-Security-Token=z1",
         "https://s3/b?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Security-Token=[redacted]"),
        ("/login?next=/oauth/authorize%3Fclient_id%3Dx%26code%3Dc1%26state%3D1",
         "/login?next=/oauth/authorize%3Fclient_id%3Dx%26code%3D[redacted]%26state%3D1"),
        ("amqp://sapien:hunter2@rabbitmq:5672//", "amqp://sapien:[redacted]@rabbitmq:5672//"),
        ("Authorization: Bearer abc.def-1", "Authorization: Bearer [redacted]"),
        # not credentials: kept as they are
        ("The worker process exited with code 3", "The worker process exited with code 3"),
        ("http://127.0.0.1:8080/health?verbose=1", "http://127.0.0.1:8080/health?verbose=1"),
    ],
)  # fmt: skip
def test_redact_credentials(text: str, redacted: str) -> None:
    assert redact_credentials(text) == redacted
    assert redact_credentials(redacted) == redacted


def test_records_of_any_logger_lose_the_credentials_in_their_message_arguments_extras_and_exception() -> None:
    # given records as runserver, gunicorn, a task and a failing request write them
    def record(name: str, msg: str, args: object = (), **extra: object) -> logging.LogRecord:
        made = logging.makeLogRecord({"name": name, "levelno": logging.WARNING, "levelname": "WARNING",
                                      "msg": msg, "args": args, **extra})  # fmt: skip
        return made

    try:
        raise ValueError("fetching https://h.example.com/hook?token=t4 failed")
    except ValueError:
        exc_info = sys.exc_info()
    records = [
        record("django.server", '"%s" %s %s', ("GET /api/v1/blobs/b?expires=1&signature=s1 HTTP/1.1", "403", "90")),
        record("gunicorn.error", "Invalid request from ip=127.0.0.1: %(error)s", {"error": "'GET /x?access_token=t2'"}),
        record("deliveries.claims", "Delivery attempt failed", callback_url="https://h.example.com/?token=t3",
               details={"urls": ["/cb?code=c5"]}, attempt=2),
        record("django.request", "Internal Server Error: /x", exc_info=exc_info),
    ]  # fmt: skip

    # when the filter of the console handler passes over them, and they are formatted
    redact = RedactCredentialsFilter()
    lines = [FORMATTERS["json"].format(r) for r in records if redact.filter(r)]

    # then nothing of the credentials is left, and the rest is
    for secret in ("s1", "t2", "t3", "t4", "c5"):
        assert f"={secret}" not in "\n".join(lines)
    assert json.loads(lines[0])["message"] == '"GET /api/v1/blobs/b?expires=1&signature=[redacted] HTTP/1.1" 403 90'
    assert json.loads(lines[1])["message"] == "Invalid request from ip=127.0.0.1: 'GET /x?access_token=[redacted]'"
    assert json.loads(lines[2])["callback_url"] == "https://h.example.com/?token=[redacted]"
    assert json.loads(lines[2])["details"] == {"urls": ["/cb?code=[redacted]"]}
    assert json.loads(lines[2])["attempt"] == 2
    assert json.loads(lines[3])["exception"].endswith(
        "ValueError: fetching https://h.example.com/hook?token=[redacted] failed"
    )
    # and passing the filter again changes nothing
    assert [FORMATTERS["json"].format(r) for r in records if redact.filter(r)] == lines
