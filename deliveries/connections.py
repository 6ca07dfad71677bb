"""The process's keep-alive connections to receivers: each opened by urllib3, then written and read by http.client.

urllib3's connection classes open them, so the connect-time address check (``deliveries/safe_http.py``), the
egress proxy (``deliveries/egress.py``) and TLS (certifi's bundle, the certificate checked against the host name)
are urllib3's. Once open, each request goes out through ``http.client`` on the same socket, headers and body in one
write, and its answer is read by ``http.client``: urllib3's request cycle on top (its pool, retry and timeout
objects, its response wrapper, a second write for the body) cost as much CPU as the request itself.

Idle connections are kept per origin (scheme, host, port), for the ``MAX_ORIGINS`` origins used last; one found
closed by its receiver while idle is dropped before it is used.
"""

import http.client
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import certifi
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import LocationValueError
from urllib3.util import parse_url
from urllib3.util.ssl_ import create_urllib3_context

from deliveries.egress import ForwardedHTTPConnection, TunnelledHTTPSConnection
from deliveries.safe_http import CheckedHTTPConnection, CheckedHTTPSConnection
from subscriptions.url_safety import UnsafeCallbackURL, parse_callback_url

DEFAULT_PORTS = {"http": 80, "https": 443}

# Origins whose idle connections a process keeps, and callback URLs whose routes it keeps; past them, the least
# recently used origin's connections are closed, and routes are worked out again.
MAX_ORIGINS = 64
MAX_ROUTES = 1024


@dataclass(frozen=True)
class Route:
    """Where a callback URL's requests go: its origin, and the request target (the whole URL when the egress proxy
    forwards plain http, ``forwarded``)."""

    scheme: str
    host: str
    port: int
    target: str
    forwarded: bool

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


class Wire(http.client.HTTPConnection):
    """One keep-alive connection: opened by ``opener`` (a urllib3 connection), requests written by http.client."""

    def __init__(self, opener: HTTPConnection, route: Route) -> None:
        super().__init__(route.host, route.port)
        self.default_port = DEFAULT_PORTS[route.scheme]  # the Host header names the port only when not the default
        self.opener = opener
        self.read_timeout: float | None = None

    def connect(self) -> None:
        self.opener.connect()  # the address check, the proxy, TLS
        self.sock = self.opener.sock
        self.sock.settimeout(self.read_timeout)

    def set_timeouts(self, *, connect: float, read: float) -> None:
        """For the next request: ``connect`` to open the connection, ``read`` for each wait on the socket after."""
        self.opener.timeout = connect
        self.read_timeout = read
        if self.sock is not None:
            self.sock.settimeout(read)

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        """No ``Accept-Encoding``: a webhook's request carries its own headers, ``Host`` and ``Content-Length``."""
        super().putrequest(method, url, skip_host=skip_host, skip_accept_encoding=True)

    def close(self) -> None:
        super().close()
        self.opener.close()

    def usable(self) -> bool:
        """Not yet opened, or open and not closed by the receiver while idle (nothing to read on it)."""
        return self.sock is None or self.opener.is_connected


class Connections:
    """The process's routes and idle connections (one ``Connections`` per process: ``transport._connections``)."""

    def __init__(self) -> None:
        self.opener_classes = _opener_classes()
        self.max_idle = max(settings.ESL_DELIVERY_CONCURRENCY, 10)  # per origin
        self._routes: dict[str, Route] = {}
        self._idle: OrderedDict[tuple[str, str, int], list[Wire]] = OrderedDict()
        self._tls: ssl.SSLContext | None = None  # made with the first https connection: a CA store costs 3 MB
        self._lock = threading.Lock()

    def route(self, url: str) -> Route:
        """``url``'s route, worked out once per URL; raises ``ValueError`` for a URL that cannot be sent to."""
        return self._routes.get(url) or self._route(url)

    def take(self, route: Route) -> Wire:
        """An idle connection to ``route``'s origin, or a new one (opened by its first request)."""
        with self._lock:
            idle = self._idle.get(route.origin)
            while idle:
                wire = idle.pop()
                if wire.usable():
                    return wire
                wire.close()
            opener_class = self.opener_classes[route.scheme]
            options: dict[str, Any] = {}
            if route.scheme == "https":
                self._tls = self._tls or _tls_context()
                options = {"ssl_context": self._tls, "cert_reqs": "CERT_REQUIRED"}
        return Wire(opener_class(route.host, route.port, **options), route)

    def give_back(self, route: Route, wire: Wire) -> None:
        """Keeps ``wire`` for the next request to its origin (closes it past ``max_idle`` idle ones)."""
        with self._lock:
            idle = self._idle.get(route.origin)
            if idle is None:
                idle = self._idle[route.origin] = []
                if len(self._idle) > MAX_ORIGINS:
                    for dropped in self._idle.popitem(last=False)[1]:
                        dropped.close()
            else:
                self._idle.move_to_end(route.origin)
            if len(idle) < self.max_idle:
                idle.append(wire)
                return
        wire.close()

    def _route(self, url: str) -> Route:
        parsed = parse_url(url if url.isascii() else _with_ascii_host(url))
        scheme = (parsed.scheme or "").lower()
        if scheme not in self.opener_classes or not parsed.host:
            raise LocationValueError(f"Not an absolute http(s) URL: {url}")
        # Through the egress proxy, a plain-http request names the whole URL (deliveries/egress.py).
        forwarded = scheme == "http" and getattr(self.opener_classes["http"], "forwards_absolute_urls", False)
        route = Route(
            scheme=scheme,
            host=parsed.host.removeprefix("[").removesuffix("]"),  # an IPv6 literal, as a socket address names it
            port=parsed.port or DEFAULT_PORTS[scheme],
            target=parsed.url if forwarded else parsed.request_uri,
            forwarded=forwarded,
        )
        with self._lock:
            if len(self._routes) >= MAX_ROUTES:
                self._routes.clear()
            self._routes[url] = route
        return route

    def close(self) -> None:
        """Closes every idle connection (the process's connections are being replaced)."""
        with self._lock:
            for idle in self._idle.values():
                for wire in idle:
                    wire.close()
            self._idle.clear()


def _opener_classes() -> dict[str, type[HTTPConnection]]:
    """The connection classes that open connections, by scheme, as the settings say."""
    if settings.ESL_EGRESS_PROXY_URL:  # they check addresses themselves, before asking the proxy
        return {"http": ForwardedHTTPConnection, "https": TunnelledHTTPSConnection}
    if settings.ESL_ALLOW_PRIVATE_CALLBACKS:
        return {"http": HTTPConnection, "https": HTTPSConnection}
    return {"http": CheckedHTTPConnection, "https": CheckedHTTPSConnection}


def _tls_context() -> ssl.SSLContext:
    """One context for every https connection, certifi's bundle loaded once (not once per connection)."""
    context = create_urllib3_context()
    context.load_verify_locations(certifi.where())
    return context


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
