"""HTTP transport: pure I/O returning a frozen ``DeliveryResult``; failures are outcomes.

One urllib3 ``PoolManager`` per process keeps keep-alive connections pooled per host (urllib3 without
requests: requests' per-call merging of settings, cookies and hooks cost more CPU than the send itself, and
none of it applies here). Redirects are never followed, nothing is retried, no proxy, CA bundle or cookie is
taken from the environment or from earlier answers, certificates are checked against certifi's bundle, and at
most ``RESPONSE_EXCERPT_CHARS * 4`` bytes of an answer are read. The one proxy is ``ESL_EGRESS_PROXY_URL``'s
(``deliveries/egress.py``).
"""

import functools
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import certifi
from django.conf import settings
from django.utils import timezone
from urllib3 import HTTPConnectionPool, PoolManager
from urllib3.connectionpool import port_by_scheme
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.poolmanager import PoolKey
from urllib3.util import Timeout, parse_url
from urllib3.util.ssl_ import create_urllib3_context

from deliveries.egress import ProxiedPoolManager, ProxyFailure
from deliveries.models import RESPONSE_EXCERPT_CHARS
from deliveries.per_process import PerProcess
from deliveries.safe_http import PublicOnlyPoolManager
from subscriptions.url_safety import UnsafeCallbackURL, parse_callback_url


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


def _tls_context() -> ssl.SSLContext:
    """One context for every https connection, certifi's bundle loaded once (not once per connection)."""
    context = create_urllib3_context()
    context.load_verify_locations(certifi.where())
    return context


def _pool_manager() -> PoolManager:
    manager_class: type[PoolManager] = PoolManager if settings.ESL_ALLOW_PRIVATE_CALLBACKS else PublicOnlyPoolManager
    if settings.ESL_EGRESS_PROXY_URL:
        manager_class = ProxiedPoolManager  # it checks addresses itself, before asking the proxy
    return manager_class(
        num_pools=64, maxsize=max(settings.ESL_DELIVERY_CONCURRENCY, 10), retries=False, cert_reqs="CERT_REQUIRED"
    )


class Connections:
    """The process's keep-alive connections: a ``PoolManager``'s pools, one per origin, and each callback URL's
    pool key and path, worked out once per URL rather than on every send (a sixth of a send's CPU)."""

    def __init__(self, manager: PoolManager) -> None:
        self.manager = manager
        self._routes: dict[str, tuple[PoolKey, dict[str, Any], str]] = {}
        self._tls: ssl.SSLContext | None = None  # made with the first https route: a CA store costs 3 MB
        self._routing = threading.Lock()  # one route, and one TLS context, for URLs first sent at once

    def pool_for(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """The pool for ``url``'s origin, and the path to request from it; raises ``ValueError`` for a bad URL."""
        key, context, path = self._routes.get(url) or self._route(url)
        # A copy: urllib3 takes the pool's arguments out of the context it is given, when it makes the pool.
        return self.manager.connection_from_pool_key(key, request_context=dict(context)), path

    def _route(self, url: str) -> tuple[PoolKey, dict[str, Any], str]:
        parsed = parse_url(url if url.isascii() else _with_ascii_host(url))
        scheme = (parsed.scheme or "").lower()
        key_for = self.manager.key_fn_by_scheme.get(scheme)
        if key_for is None or not parsed.host:
            raise LocationValueError(f"Not an absolute http(s) URL: {url}")
        port = parsed.port or port_by_scheme[scheme]
        context = {**self.manager.connection_pool_kw, "scheme": scheme, "host": parsed.host, "port": port}
        with self._routing:
            if scheme == "https":
                self._tls = self._tls or _tls_context()
                context["ssl_context"] = self._tls
            # Through the egress proxy, a plain-http request names the whole URL (deliveries/egress.py).
            forwarded = scheme == "http" and getattr(self.manager, "forwards_absolute_urls", False)
            route = (key_for(context), context, parsed.url if forwarded else parsed.request_uri)
            if len(self._routes) >= MAX_ROUTES:
                self._routes.clear()
            self._routes[url] = route
        return route


# Callback URLs whose routes a process keeps; past it, they are worked out again.
MAX_ROUTES = 1024

# The process's connections (re-created after a fork, or by ``reset()`` after a setting they depend on changed).
_connections = PerProcess(lambda: Connections(_pool_manager()))


@functools.lru_cache(maxsize=8)
def _timeout(connect: float, read: float) -> Timeout:
    return Timeout(connect=connect, read=read)


def post(request: DeliveryRequest) -> DeliveryResult:
    started_at = timezone.now()
    started = time.perf_counter()
    try:
        pool, path = _connections.get().pool_for(request.url)
        response = pool.urlopen(
            "POST",
            path,
            body=request.body,
            headers=request.headers,
            assert_same_host=False,
            redirect=False,
            retries=False,
            timeout=_timeout(settings.ESL_CONNECT_TIMEOUT_SECONDS, settings.ESL_READ_TIMEOUT_SECONDS),
            preload_content=False,
        )
        try:
            excerpt = response.read(RESPONSE_EXCERPT_CHARS * 4, decode_content=True)
        finally:
            response.close()  # a longer answer is not read on: its connection is closed, and returns to the pool empty
            response.release_conn()
        return DeliveryResult(
            started_at=started_at,
            duration_ms=int((time.perf_counter() - started) * 1000),
            status_code=response.status,
            response_excerpt=excerpt.decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS],
            retry_after=response.headers.get("Retry-After"),
        )
    except ProxyFailure as exc:  # the proxy failed, not the receiver
        error = f"proxy error: {_first_line(exc)}"
    except NewConnectionError as exc:  # a ConnectTimeoutError too, for urllib3's history: caught first
        error = f"connection error: {_first_line(exc, prefix=f'{exc.conn}: ')}"
    except ConnectTimeoutError:
        error = "timeout: ConnectTimeout"
    except ReadTimeoutError:  # waiting for the answer, or for the rest of it
        error = "timeout: ReadTimeout"
    except ValueError as exc:  # a URL or header that cannot be sent (urllib3's LocationValueError among them)
        error = f"request error: {_first_line(exc)}"
    except (HTTPError, OSError) as exc:  # refused, reset, cut short, TLS, an undecodable answer...
        error = f"connection error: {_first_line(exc)}"
    return DeliveryResult(
        started_at=started_at, duration_ms=int((time.perf_counter() - started) * 1000), error=error[:500]
    )


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


def _with_ascii_host(url: str) -> str:
    """``url`` with a non-ASCII host IDNA-encoded by UTS 46, as the callback URL check encoded it to resolve it
    (urllib3 alone would encode it by IDNA 2008 without UTS 46's mapping)."""
    parts = urlsplit(url)
    if parts.netloc.isascii():
        return url
    try:
        target = parse_callback_url(url)
    except UnsafeCallbackURL as exc:
        raise ValueError(str(exc)) from exc
    netloc = target.host if parts.port is None else f"{target.host}:{target.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: Exception, *, prefix: str = "") -> str:
    text = str(exc).removeprefix(prefix) or type(exc).__name__
    return text.splitlines()[0]
