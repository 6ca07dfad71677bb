"""The web process as it really runs: gunicorn from ``sapien.processes`` on a loopback port.

Its access log has no query strings, its own error lines lose their credentials, and Django (with
the JSON error shape) answers every request within gunicorn's limits, which are pinned here as
docs/operations.md states them.
"""

import http.client
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from deliveries.blobs import blob_signature
from tests.support import processes
from tests.support.platform import broker_url_for

NOT_FOUND = {"error": {"code": "not_found", "message": "Not found."}}
ACCESS_LINE = re.compile(r'127\.0\.0\.1 \[[^\]]+\] "(?P<request>[^"]*)" (?P<status>\d{3}) \d+ \d+ms')


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def web(transactional_db, tmp_path) -> Iterator[tuple[processes.Process, int]]:
    port = processes.free_port()
    env = processes.service_env(broker_url_for("redis"), LOG_LEVEL="INFO")
    server = processes.web(env, tmp_path, port).start()
    try:
        processes.wait_until(lambda: listening(port), timeout=60, message="gunicorn listening")
        yield server, port
    finally:
        server.stop()
        print(server.log()[-4000:])


def get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One GET with http.client, which adds ``Host`` and ``Accept-Encoding`` to ``headers``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def raw_status_line(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        return sock.makefile("rb").readline().rstrip(b"\r\n")


def access_lines(log: str) -> list[re.Match[str]]:
    return [match for line in log.splitlines() if (match := ACCESS_LINE.fullmatch(line))]


def test_the_access_log_names_each_path_without_its_query(web) -> None:
    # given a tampered blob link (its genuine signature kept) and a token sent in a URL
    server, port = web
    blob_id, expires = uuid.uuid4(), int(time.time()) + 3600
    signature, token = blob_signature(blob_id, expires), f"tok-{uuid.uuid4().hex}"

    # when both are requested
    blob = get(port, f"/api/v1/blobs/{blob_id}?expires={expires + 1}&signature={signature}")
    unknown = get(port, f"/api/v1/no-such-thing?access_token={token}")

    # then both are refused, and logged by path alone
    assert (blob[0], unknown[0]) == (403, 404)
    processes.wait_until(lambda: len(access_lines(server.log())) >= 2, message="two access log lines")
    requests = [(m["request"], m["status"]) for m in access_lines(server.log())]
    assert requests == [(f"GET /api/v1/blobs/{blob_id}", "403"), ("GET /api/v1/no-such-thing", "404")]
    # and no line of the process, gunicorn's or Django's, holds either secret
    log = server.log()
    assert f"Forbidden: /api/v1/blobs/{blob_id}" in log
    assert signature not in log
    assert token not in log


def test_gunicorn_error_lines_lose_the_credentials_of_the_request_they_quote(web) -> None:
    # given a request line gunicorn cannot parse, with a token in its query
    server, port = web
    token = f"tok-{uuid.uuid4().hex}"

    # when it is sent
    status = raw_status_line(port, f"GET /x?token={token}\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    # then gunicorn answers it, and logs it without the token
    assert status == b"HTTP/1.1 400 Bad Request"
    line = "Invalid request from ip=127.0.0.1: Invalid HTTP request line: 'GET /x?token=[redacted]\\x01 HTTP/1.1'"
    processes.wait_until(lambda: line in server.log(), message="gunicorn's error line")
    assert token not in server.log()


def test_django_answers_long_urls_and_large_headers_with_the_json_error_shape(web) -> None:
    _, port = web
    # a 6 KB path
    assert get(port, "/" + "a" * 6000) == (404, "application/json", json.dumps(NOT_FOUND).encode())
    # the longest request line gunicorn passes on: "GET " + 8177 bytes + " HTTP/1.1" is 8190 bytes
    assert get(port, "/" + "a" * 8176)[:2] == (404, "application/json")
    # the largest header field: "X-Big: " + 8181 bytes is 8188, 8190 with its line end
    assert get(port, "/nothing", {"X-Big": "b" * 8181})[:2] == (404, "application/json")
    # the most header fields: 98 here, with Host and Accept-Encoding 100
    assert get(port, "/nothing", {f"X-{n}": "v" for n in range(98)})[:2] == (404, "application/json")


def test_gunicorn_answers_what_is_beyond_its_limits_itself(web) -> None:
    _, port = web
    # a request line of 8191 bytes
    assert get(port, "/" + "a" * 8177)[:2] == (414, "text/html")
    # a header field of 8191 bytes with its line end
    assert get(port, "/nothing", {"X-Big": "b" * 8182})[:2] == (431, "text/html")
    # 101 header fields
    assert get(port, "/nothing", {f"X-{n}": "v" for n in range(99)})[:2] == (431, "text/html")
