"""Deliveries through ``ESL_EGRESS_PROXY_URL``: a forward proxy on loopback, the SSRF guard still on the target.

https callbacks are tunnelled with CONNECT to the address that was checked (never the name, which the proxy
would resolve again); plain-http ones are forwarded in absolute form. The proxy's own failures are recorded
as ``proxy error: …``, apart from the receiver's answers, and its password never shows.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from deliveries import connections, transport
from deliveries.claims import ClaimedEvent, ClaimedSubscription
from deliveries.outbound import build_request
from deliveries.transport import DeliveryRequest, post
from sapien.core.egress_proxy import parse_egress_proxy_url
from tests.support.claimed import claimed_delivery
from tests.support.forward_proxy import ForwardProxy
from tests.support.receiver import Receiver
from tests.support.tls import TLSReceiver, self_signed_certificate

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "proxy-pa55word-never-shown"


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def through(settings):
    """Sends through the given proxy URL, with loopback callbacks allowed; the connections are made anew."""

    def use(proxy_url: str, *, private_callbacks: bool = True) -> None:
        settings.ESL_EGRESS_PROXY_URL = proxy_url
        settings.ESL_ALLOW_PRIVATE_CALLBACKS = private_callbacks
        transport._connections.reset()

    yield use
    transport._connections.reset()


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch) -> Iterator[TLSReceiver]:
    """An https receiver whose certificate stands in for certifi's bundle."""
    certificate = self_signed_certificate(tmp_path)
    monkeypatch.setattr(connections.certifi, "where", lambda: str(certificate[0]))
    receiver = TLSReceiver(certificate)
    yield receiver
    receiver.close()


def webhook_to(url: str, headers: dict[str, str] | None = None) -> DeliveryRequest:
    event = ClaimedEvent(
        id=uuid.uuid4(), type="system.ping", body='{"type":"system.ping"}', organization_id=uuid.uuid4(),
        created_at=timezone.now(),
    )  # fmt: skip
    subscription = ClaimedSubscription(
        id=uuid.uuid4(), callback_url=url, secret="s" * 20, active=True, headers=headers or {}
    )
    return build_request(claimed_delivery(event, subscription), event.body.encode())


def test_a_plain_http_callback_is_forwarded_in_absolute_form_with_its_host_and_headers(
    proxy, receiver, through
) -> None:
    through(proxy.url)
    port = receiver.server.server_address[1]
    request = webhook_to(f"http://receiver.example:{port}/hooks?x=1", headers={"Authorization": "Bearer abc"})

    result = post(request)

    assert (result.status_code, result.error) == (200, "")
    assert [(r.method, r.target) for r in proxy.requests] == [("POST", f"http://receiver.example:{port}/hooks?x=1")]
    (received,) = receiver.requests
    assert received.path == "/hooks?x=1"
    assert received.header("host") == f"receiver.example:{port}"
    assert received.header("authorization") == "Bearer abc"
    assert received.header("x-sapien-signature") == request.headers["X-Sapien-Signature"]
    assert received.body == request.body


def test_keep_alive_connections_to_the_proxy_are_reused(proxy, receiver, through) -> None:
    through(proxy.url)

    results = [post(webhook_to(receiver.url)) for _ in range(3)]

    assert [result.status_code for result in results] == [200, 200, 200]
    assert (len(proxy.requests), proxy.connections) == (3, 1)


def test_an_https_callback_is_tunnelled_to_the_address_that_was_checked_and_verified_by_its_name(
    proxy, tls_receiver, through
) -> None:
    """receiver.example resolves to 127.0.0.1 here: the proxy is asked for that address, never the name, and
    TLS inside the tunnel checks the certificate against the name."""
    through(proxy.url)

    result = post(webhook_to(f"https://receiver.example:{tls_receiver.port}/hooks", {"X-Api-Key": "k-123"}))

    assert (result.status_code, result.error) == (200, "")
    assert [(r.method, r.target) for r in proxy.requests] == [("CONNECT", f"127.0.0.1:{tls_receiver.port}")]
    (received,) = tls_receiver.received
    assert received.startswith(b"POST /hooks HTTP/1.1\r\n")
    assert f"host: receiver.example:{tls_receiver.port}".encode() in received.lower()
    assert b"X-Api-Key: k-123" in received


def test_the_proxy_password_goes_to_the_proxy_only_and_never_to_the_receiver(receiver, through) -> None:
    proxy = ForwardProxy(password=PASSWORD)
    try:
        through(proxy.url_with_password(PASSWORD))
        result = post(webhook_to(receiver.url))
    finally:
        proxy.close()

    assert result.status_code == 200
    assert proxy.requests[0].headers["proxy-authorization"].startswith("Basic ")
    assert not any(name.startswith("proxy-") for name in receiver.requests[0].headers)


def test_a_tunnel_the_proxy_refuses_is_a_proxy_error_naming_its_answer_not_the_password(tls_receiver, through) -> None:
    proxy = ForwardProxy(password=PASSWORD)
    try:
        through(proxy.url_with_password("wrong-password"))
        result = post(webhook_to(f"https://receiver.example:{tls_receiver.port}/hooks"))
    finally:
        proxy.close()

    assert result.status_code is None
    assert (
        result.error
        == f"proxy error: the proxy 127.0.0.1:{proxy.server.server_address[1]} refused the tunnel: 407 Refused"
    )
    assert tls_receiver.received == []


@pytest.mark.parametrize("status", [403, 502, 503])
def test_any_refusal_of_connect_is_the_proxys_failure_not_a_status_of_the_receiver(
    tls_receiver, through, status
) -> None:
    proxy = ForwardProxy(answer_connect_with=status)
    try:
        through(proxy.url)
        result = post(webhook_to(f"https://127.0.0.1:{tls_receiver.port}/hooks"))
    finally:
        proxy.close()

    assert result.status_code is None
    assert result.error.startswith("proxy error: the proxy 127.0.0.1:")
    assert result.error.endswith(f"refused the tunnel: {status} Refused")


def test_a_proxy_that_is_down_is_a_proxy_error(receiver, through) -> None:
    proxy = ForwardProxy()
    proxy.close()  # nothing listens on its port any more
    through(proxy.url_with_password(PASSWORD))

    result = post(webhook_to(receiver.url))

    assert result.status_code is None
    assert result.error == (
        f"proxy error: could not connect to the proxy 127.0.0.1:{proxy.server.server_address[1]}: Connection refused"
    )
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url", ["https://receiver.example/hooks", "https://10.0.0.8/hooks", "https://[::1]/hooks", "https://127.0.0.1/"]
)
def test_an_internal_target_is_refused_before_the_proxy_is_asked_anything(proxy, through, url) -> None:
    """Every name resolves to loopback in the tests: with private callbacks not allowed, each is internal."""
    through(proxy.url, private_callbacks=False)

    result = post(webhook_to(url))

    assert result.status_code is None
    assert result.error.startswith("connection error: refused: ")
    assert "internal address" in result.error
    assert (proxy.connections, proxy.requests) == (0, [])


@pytest.mark.parametrize(
    ("url", "host", "port", "authorization"),
    [
        ("", None, None, None),
        ("http://proxy.internal:3128", "proxy.internal", 3128, ""),
        ("http://proxy.internal", "proxy.internal", 80, ""),
        ("http://10.1.2.3:8080/", "10.1.2.3", 8080, ""),
        ("http://sapien:s%40cret@proxy.internal:3128", "proxy.internal", 3128, "Basic c2FwaWVuOnNAY3JldA=="),
    ],
)
def test_a_proxy_url_is_read_as_host_port_and_credentials(url, host, port, authorization) -> None:
    proxy = parse_egress_proxy_url(url)

    if host is None:
        assert proxy is None
    else:
        assert proxy is not None
        assert (proxy.host, proxy.port, proxy.authorization) == (host, port, authorization)
        assert "cret" not in repr(proxy)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://sapien:hunter22@proxy.internal:3128", "must start with http://"),
        ("socks5://sapien:hunter22@proxy.internal:1080", "must start with http://"),
        ("http://sapien:hunter22@proxy.internal:99999", "valid port"),
        ("http://sapien:hunter22@proxy.internal:3128/path", "no path or query"),
        ("http://sapien:hunter22@proxy.internal:3128?x=1", "no path or query"),
        ("http://sapien:hunter22@:3128", "names no host"),
        ("http://sapien:hunter 22@proxy.internal:3128", "spaces"),
        ("proxy.internal:3128", "must start with http://"),
    ],
)
def test_a_bad_proxy_url_is_refused_with_a_reason_that_never_quotes_it(url, reason) -> None:
    with pytest.raises(ValueError, match=reason) as refused:
        parse_egress_proxy_url(url)

    assert "hunter" not in str(refused.value)


def test_a_process_will_not_start_with_a_bad_proxy_url_and_does_not_print_its_password() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sapien.settings",
           "ESL_EGRESS_PROXY_URL": "https://sapien:hunter22@proxy.internal:3128"}  # fmt: skip

    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert started.returncode != 0
    assert "ImproperlyConfigured: ESL_EGRESS_PROXY_URL: the URL must start with http://" in started.stderr
    assert "hunter22" not in started.stdout + started.stderr
