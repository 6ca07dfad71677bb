"""HTTP transport: pure I/O returning a frozen ``DeliveryResult``; failures are outcomes.

Requests go out over the process's keep-alive connections (``deliveries/connections.py``: opened by urllib3's
connection classes, written and read by ``http.client``). Redirects are never followed, nothing is retried, no
proxy, CA bundle or cookie is taken from the environment or from earlier answers, certificates are checked against
certifi's bundle, and at most ``RESPONSE_EXCERPT_CHARS * 4`` bytes of an answer are read: a longer answer's
connection is closed rather than read on. The one proxy is ``ESL_EGRESS_PROXY_URL``'s (``deliveries/egress.py``).
"""

import http.client
import ssl
import time
import zlib
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from deliveries.connections import Connections
from deliveries.egress import ProxyFailure, forwarding_headers
from deliveries.models import RESPONSE_EXCERPT_CHARS
from deliveries.per_process import PerProcess


@dataclass(frozen=True)
class DeliveryRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class DeliveryResult:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str = ""
    response_excerpt: str = ""
    retry_after: str | None = None

    def __post_init__(self) -> None:
        """A result's texts are stored as they are: whatever a receiver answered, PostgreSQL must hold them."""
        object.__setattr__(self, "error", stored_text(self.error))
        object.__setattr__(self, "response_excerpt", stored_text(self.response_excerpt))


# The process's connections (made anew after a fork, or by ``reset()`` after a setting they depend on changed).
_connections = PerProcess(Connections)


def post(request: DeliveryRequest) -> DeliveryResult:
    started_at = timezone.now()
    started = time.perf_counter()
    try:
        status_code, excerpt, retry_after = _exchange(request, limit=RESPONSE_EXCERPT_CHARS * 4)
        return DeliveryResult(
            started_at=started_at,
            duration_ms=int((time.perf_counter() - started) * 1000),
            status_code=status_code,
            response_excerpt=excerpt.decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS],
            retry_after=retry_after,
        )
    except ProxyFailure as exc:  # the proxy failed, not the receiver
        error = f"proxy error: {_first_line(exc)}"
    except NewConnectionError as exc:  # a ConnectTimeoutError too, for urllib3's history: caught first
        error = f"connection error: {_first_line(exc, prefix=f'{exc.conn}: ')}"
    except ConnectTimeoutError:
        error = "timeout: ConnectTimeout"
    except TimeoutError:  # once connected: the TLS handshake, sending, waiting for the answer or the rest of it
        error = "timeout: ReadTimeout"
    except ssl.SSLError as exc:  # a certificate refused among them (also a ValueError)
        error = f"connection error: {_first_line(exc)}"
    except ValueError as exc:  # a URL or header that cannot be sent (urllib3's LocationValueError among them)
        error = f"request error: {_first_line(exc)}"
    except (HTTPError, http.client.HTTPException, OSError) as exc:  # refused, reset, cut short, not HTTP...
        error = f"connection error: {_first_line(exc)}"
    return DeliveryResult(
        started_at=started_at, duration_ms=int((time.perf_counter() - started) * 1000), error=error[:500]
    )


def _exchange(request: DeliveryRequest, *, limit: int) -> tuple[int, bytes, str | None]:
    """Sends ``request`` on a keep-alive connection to its origin and reads the answer: its status, at most
    ``limit`` bytes of it (decoded), and its ``Retry-After``. The connection is kept for the next request only
    when the answer was read to its end; a failure raises, and closes it."""
    connections = _connections.get()
    route = connections.route(request.url)
    headers = forwarding_headers(request.headers) if route.forwarded else request.headers
    wire = connections.take(route)
    try:
        wire.set_timeouts(connect=settings.ESL_CONNECT_TIMEOUT_SECONDS, read=settings.ESL_READ_TIMEOUT_SECONDS)
        try:
            wire.request("POST", route.target, body=request.body, headers=headers)
        except BrokenPipeError:
            pass  # a receiver may answer (413, say) and close before reading the whole body: its answer is read
        response = wire.getresponse()
        excerpt = _read_excerpt(response, limit)
    except BaseException:
        wire.close()  # failed midway: nothing more is sent on it
        raise
    if response.isclosed() and not response.will_close:
        connections.give_back(route, wire)  # read to its end: ready for the next request
    else:
        wire.close()  # a longer answer is not read on
    return response.status, excerpt, response.getheader("Retry-After")


def _read_excerpt(response: http.client.HTTPResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the answer, decoded; raises ``IncompleteRead`` when it ends before its
    ``Content-Length`` (http.client raises it for a chunked answer cut short, and returns a short read otherwise)."""
    raw = response.read(limit)
    if response.length and len(raw) < limit:
        raise http.client.IncompleteRead(raw, response.length)
    return _decoded(raw, response.getheader("Content-Encoding", ""), limit=limit)


def _decoded(raw: bytes, encoding: str, *, limit: int) -> bytes:
    """``raw`` decoded from gzip or deflate (the encodings every webhook says it accepts), to at most ``limit``
    bytes; any other encoding, or an answer that does not decode, is kept as it came."""
    encoding = encoding.strip().lower()
    if not raw or encoding not in {"gzip", "x-gzip", "deflate"}:
        return raw
    # deflate as most servers send it (zlib's wrapper), then as some do (bare); gzip's wrapper, for gzip.
    for window in (zlib.MAX_WBITS, -zlib.MAX_WBITS) if encoding == "deflate" else (16 + zlib.MAX_WBITS,):
        try:
            return zlib.decompressobj(window).decompress(raw, limit)
        except zlib.error:
            continue
    return raw


def stored_text(text: str) -> str:
    """Text as PostgreSQL can store it: NUL (which a receiver's answer or an error about it may hold) and lone
    surrogates replaced. Every ``DeliveryResult`` stores its texts so."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _first_line(exc: Exception, *, prefix: str = "") -> str:
    text = str(exc).removeprefix(prefix) or type(exc).__name__
    return text.splitlines()[0]
