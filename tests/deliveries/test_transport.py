"""The transport on loopback: what goes on the wire, what is read back, and every failure as an outcome."""

import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from deliveries import connections, transport
from deliveries.claims import ClaimedEvent, ClaimedSubscription
from deliveries.models import RESPONSE_EXCERPT_CHARS
from deliveries.outbound import build_request
from deliveries.transport import DeliveryRequest, post
from tests.support.claimed import claimed_delivery
from tests.support.receiver import Receiver, always


@pytest.fixture(autouse=True)
def loopback_callbacks(e2e_settings):
    transport._connections.reset()  # the connections are made for the current setting
    yield e2e_settings
    transport._connections.reset()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def webhook_to(url: str) -> DeliveryRequest:
    event = ClaimedEvent(
        id=uuid.uuid4(), type="system.ping", body='{"type":"system.ping"}', organization_id=uuid.uuid4(),
        created_at=timezone.now(),
    )  # fmt: skip
    subscription = ClaimedSubscription(id=uuid.uuid4(), callback_url=url, secret="s" * 20, active=True)
    return build_request(claimed_delivery(event, subscription), event.body.encode())


def test_a_webhook_carries_its_headers_a_content_length_and_nothing_else(receiver) -> None:
    request = webhook_to(receiver.url)

    result = post(request)

    assert result.status_code == 200
    (received,) = receiver.requests
    assert received.body == request.body
    assert {name: received.header(name) for name in request.headers} == request.headers
    assert set(received.headers) == {name.lower() for name in request.headers} | {"host", "content-length"}
    assert received.header("content-length") == str(len(request.body))


def test_a_redirect_is_an_answer_and_is_not_followed(receiver) -> None:
    receiver.responder = lambda request: (307, {"Location": f"{receiver.url}/elsewhere"}, b"")

    result = post(webhook_to(receiver.url))

    assert result.status_code == 307
    assert [request.path for request in receiver.requests] == ["/hooks"]


def test_a_cookie_a_receiver_sets_is_never_sent_back(receiver) -> None:
    receiver.responder = always(200, {"Set-Cookie": "session=abc; Path=/"})

    post(webhook_to(receiver.url))
    post(webhook_to(receiver.url))

    assert [("cookie" in request.headers) for request in receiver.requests] == [False, False]


def test_only_the_start_of_a_long_answer_is_kept_and_the_next_send_still_goes_out(receiver) -> None:
    receiver.responder = always(500, body=b"x" * 1_000_000)

    first = post(webhook_to(receiver.url))
    receiver.responder = always(200)
    second = post(webhook_to(receiver.url))

    assert first.status_code == 500
    assert first.response_excerpt == "x" * RESPONSE_EXCERPT_CHARS
    assert second.status_code == 200


def test_nul_bytes_in_an_answer_are_kept_as_replacement_characters_postgresql_can_store(receiver) -> None:
    receiver.responder = always(500, body=b"no\x00pe \xed\xa0\x80")  # NUL, and a surrogate's UTF-8 bytes

    result = post(webhook_to(receiver.url))

    assert result.response_excerpt == "no\ufffdpe \ufffd\ufffd\ufffd"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib's wrapper, as most servers send deflate
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # bare, as some do
    ],
)
def test_an_answer_in_an_encoding_the_request_accepts_is_kept_decoded(receiver, encoding, encode) -> None:
    receiver.responder = always(500, {"Content-Encoding": encoding}, encode(b"database is down"))

    result = post(webhook_to(receiver.url))

    assert (result.status_code, result.response_excerpt) == (500, "database is down")


def test_only_the_start_of_a_long_encoded_answer_is_decoded_and_kept(receiver) -> None:
    receiver.responder = always(500, {"Content-Encoding": "gzip"}, gzip.compress(b"x" * 10_000_000))

    result = post(webhook_to(receiver.url))

    assert (result.status_code, result.response_excerpt) == (500, "x" * RESPONSE_EXCERPT_CHARS)


def test_an_answer_that_does_not_decode_is_kept_as_it_came(receiver) -> None:
    receiver.responder = always(502, {"Content-Encoding": "gzip"}, b"not gzip at all")

    result = post(webhook_to(receiver.url))

    assert (result.status_code, result.response_excerpt, result.error) == (502, "not gzip at all", "")


def test_retry_after_is_read_from_the_answer(receiver) -> None:
    receiver.responder = always(429, {"Retry-After": "120"})

    result = post(webhook_to(receiver.url))

    assert (result.status_code, result.retry_after) == (429, "120")


def requests_on(stream: socket.socket) -> Iterator[bytes]:
    """Each whole request sent on ``stream`` (head, then the body its Content-Length announces), until it closes."""
    received = b""
    while True:
        while b"\r\n\r\n" not in received:
            chunk = stream.recv(65536)
            if not chunk:
                return
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            chunk = stream.recv(65536)
            if not chunk:
                return
            rest += chunk
        yield head + b"\r\n\r\n" + rest[:length]
        received = rest[length:]


def read_request(connection: socket.socket) -> bytes:
    """One whole request (head, then the body its Content-Length announces): a socket closed with unread
    bytes would reset the connection rather than end it."""
    return next(requests_on(connection), None) or pytest.fail("the connection closed before the request's end")


def one_answer_server(answer: Callable[[socket.socket], None]) -> str:
    """A server that reads one request and lets ``answer`` write to the connection; its URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, listener:
            read_request(connection)
            answer(connection)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"


HEAD_OF_A_LONGER_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"


def test_an_answer_broken_off_midway_is_a_connection_error_not_an_exception() -> None:
    url = one_answer_server(lambda connection: connection.sendall(HEAD_OF_A_LONGER_ANSWER))

    result = post(webhook_to(url))

    assert result.status_code is None
    assert result.error.startswith("connection error:")
    assert "IncompleteRead" in result.error


def test_an_answer_that_stalls_past_the_read_timeout_is_a_timeout(settings) -> None:
    settings.ESL_READ_TIMEOUT_SECONDS = 0.3
    stalled = threading.Event()

    def stall(connection: socket.socket) -> None:
        connection.sendall(HEAD_OF_A_LONGER_ANSWER)
        stalled.wait(5)

    url = one_answer_server(stall)
    try:
        result = post(webhook_to(url))
    finally:
        stalled.set()

    assert result.status_code is None
    assert result.error == "timeout: ReadTimeout"


def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]

    result = post(webhook_to(f"http://127.0.0.1:{port}/hooks"))

    assert result.status_code is None
    assert result.error.startswith("connection error: Failed to establish a new connection")
    assert "object at 0x" not in result.error


@dataclass
class KeepAliveServer:
    """A receiver that answers every request on a connection with ``answer`` (and closes the connection after each
    answer when ``close_after_answer``), over TLS with ``tls``; it counts the connections it accepted and those the
    sender closed."""

    answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    close_after_answer: bool = False
    tls: ssl.SSLContext | None = None
    accepted: int = 0
    closed_by_sender: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    answered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/hooks"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            with self.tls.wrap_socket(connection, server_side=True) if self.tls else connection as stream:
                for _request in requests_on(stream):
                    stream.sendall(self.answer)
                    self.answered.release()
                    if self.close_after_answer:
                        stream.shutdown(socket.SHUT_RDWR)
                        return
                self.closed_by_sender.release()
        except OSError:
            connection.close()

    def close(self) -> None:
        self.listener.close()


def test_sends_to_one_origin_share_one_keep_alive_connection() -> None:
    server = KeepAliveServer()

    results = [post(webhook_to(server.url)) for _ in range(3)]

    assert [result.status_code for result in results] == [200, 200, 200]
    assert server.accepted == 1
    server.close()


def test_a_connection_the_receiver_closed_while_idle_is_not_sent_on_again() -> None:
    server = KeepAliveServer(close_after_answer=True)

    first = post(webhook_to(server.url))
    assert server.answered.acquire(timeout=5)  # and the connection closed: the sender holds it idle
    second = post(webhook_to(server.url))

    assert (first.status_code, second.status_code, second.error) == (200, 200, "")
    assert server.accepted == 2
    server.close()


def test_a_chunked_answer_is_read_to_its_end_and_its_connection_kept() -> None:
    chunked = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    server = KeepAliveServer(answer=chunked)

    results = [post(webhook_to(server.url)) for _ in range(2)]

    assert [(result.status_code, result.response_excerpt) for result in results] == [(500, "abcde"), (500, "abcde")]
    assert server.accepted == 1
    server.close()


def test_past_the_origins_kept_the_least_recently_used_origin_s_connection_is_closed(monkeypatch) -> None:
    monkeypatch.setattr(connections, "MAX_ORIGINS", 1)
    first, second = KeepAliveServer(), KeepAliveServer()

    post(webhook_to(first.url))
    assert not first.closed_by_sender.acquire(timeout=0.2)  # kept idle, for the next send to it
    post(webhook_to(second.url))

    assert first.closed_by_sender.acquire(timeout=5)
    assert not second.closed_by_sender.acquire(timeout=0.2)
    first.close()
    second.close()


def test_a_host_outside_ascii_is_sent_as_the_callback_check_encoded_it(receiver) -> None:
    """UTS 46 maps the full-width b to b; the check resolved xn--bcher-kva.example, and so does the send."""
    port = receiver.server.server_address[1]

    result = post(webhook_to(f"http://\N{FULLWIDTH LATIN SMALL LETTER B}ücher.example:{port}/hooks"))

    assert result.status_code == 200
    assert receiver.requests[0].header("host") == f"xn--bcher-kva.example:{port}"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    issued = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    certificate_path, key_path = tmp_path / "receiver.pem", tmp_path / "receiver.key"
    certificate_path.write_bytes(issued.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


def test_sends_to_an_https_origin_share_one_connection_and_its_handshake(certificate, monkeypatch) -> None:
    """The production case: a TLS handshake per delivery would cost more than the delivery."""
    monkeypatch.setattr(connections.certifi, "where", lambda: str(certificate[0]))
    transport._connections.reset()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    server = KeepAliveServer(tls=tls)

    results = [post(webhook_to(server.url)) for _ in range(3)]

    assert [(result.status_code, result.error) for result in results] == [(200, "")] * 3
    assert server.accepted == 1
    server.close()


@pytest.fixture
def tls_receiver(certificate) -> Iterator[tuple[str, list[bytes]]]:
    """A receiver on ``https://127.0.0.1`` presenting ``certificate``: each request it reads is kept and answered 200."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            try:
                with tls.wrap_socket(connection, server_side=True) as secured:
                    received.append(read_request(secured))
                    secured.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except (OSError, ssl.SSLError):
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/hooks", received
    listener.close()


def test_a_certificate_certifis_bundle_does_not_vouch_for_is_refused(tls_receiver) -> None:
    url, received = tls_receiver

    result = post(webhook_to(url))

    assert result.status_code is None
    assert result.error.startswith("connection error: ")
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert received == []


def test_a_certificate_the_bundle_vouches_for_is_accepted(tls_receiver, certificate, monkeypatch) -> None:
    """The same receiver, with its certificate standing in for certifi's bundle: the bundle is what decides."""
    url, received = tls_receiver
    monkeypatch.setattr(connections.certifi, "where", lambda: str(certificate[0]))
    transport._connections.reset()

    result = post(webhook_to(url))

    assert result.status_code == 200
    assert len(received) == 1


def test_a_certificate_for_another_name_is_refused(tls_receiver, certificate, monkeypatch) -> None:
    """Vouched for by the bundle, but issued to 127.0.0.1 and reached as a name (which resolves to loopback here)."""
    url, received = tls_receiver
    monkeypatch.setattr(connections.certifi, "where", lambda: str(certificate[0]))
    transport._connections.reset()

    result = post(webhook_to(url.replace("127.0.0.1", "receiver.example")))

    assert result.status_code is None
    assert result.error.startswith("connection error: ")
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert received == []
