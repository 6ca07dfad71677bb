"""Deliveries through the explicit egress proxy (``ESL_EGRESS_PROXY_URL``), with the SSRF guard kept on the target.

Each new connection resolves the callback's host and refuses an internal address (``safe_http.checked_address``,
the rule of the callback URL check) before the proxy is contacted at all. An https callback is tunnelled with
``CONNECT <checked address>:<port>``: the proxy connects to the very address that was checked and never
resolves the name again, so DNS rebinding between check and connect cannot reach inside; TLS then runs end to
end through the tunnel, its SNI and certificate check on the callback's host name. A plain-http callback (only
accepted with ``ESL_ALLOW_PRIVATE_CALLBACKS``, which checks no address anyway) is sent in absolute form,
``POST http://host/path``, as proxies expect, and the proxy resolves the name itself.

What goes wrong at the proxy (it cannot be reached, it refuses the tunnel with 407, 403 or 502, it breaks off)
raises ``ProxyFailure``, which the transport records as ``proxy error: …``, apart from the receiver's answers.
"""

import socket
from typing import Any

from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError
from urllib3.util import connection as urllib3_connection

from deliveries.safe_http import checked_address
from sapien.core.egress_proxy import EgressProxy, parse_egress_proxy_url

MAX_CONNECT_ANSWER_BYTES = 16384


class ProxyFailure(HTTPError):
    """The proxy, not the receiver, failed this attempt; the message names the proxy by address only."""


def egress_proxy() -> EgressProxy:
    proxy = parse_egress_proxy_url(settings.ESL_EGRESS_PROXY_URL)
    if proxy is None:
        raise ProxyFailure("no egress proxy is set (ESL_EGRESS_PROXY_URL)")
    return proxy


def _connect_to_proxy(proxy: EgressProxy, *, timeout: Any, socket_options: Any) -> socket.socket:
    try:
        return urllib3_connection.create_connection((proxy.host, proxy.port), timeout, socket_options=socket_options)
    except TimeoutError:
        raise ProxyFailure(f"timed out connecting to the proxy {proxy.address}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProxyFailure(f"could not connect to the proxy {proxy.address}: {reason}") from None


def _open_tunnel(sock: socket.socket, proxy: EgressProxy, target: str) -> None:
    """Asks the proxy for a tunnel to ``target`` (``address:port``); raises ``ProxyFailure`` unless it answers 2xx."""
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if proxy.authorization:
        head += f"Proxy-Authorization: {proxy.authorization}\r\n"
    answer = b""
    try:
        sock.sendall(f"{head}\r\n".encode("ascii"))
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk or len(answer) > MAX_CONNECT_ANSWER_BYTES:
                raise ProxyFailure(f"the proxy {proxy.address} closed the tunnel before answering CONNECT")
            answer += chunk
    except TimeoutError:
        raise ProxyFailure(f"timed out waiting for the proxy {proxy.address} to answer CONNECT") from None
    except OSError as exc:
        raise ProxyFailure(f"the proxy {proxy.address} broke off CONNECT: {exc.strerror or exc}") from None
    status_line = answer.partition(b"\r\n")[0]
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProxyFailure(f"the proxy {proxy.address} answered CONNECT with something other than HTTP")
    if not 200 <= int(parts[1]) < 300:
        reason = f" {parts[2].strip()}" if len(parts) > 2 else ""
        raise ProxyFailure(f"the proxy {proxy.address} refused the tunnel: {parts[1]}{reason[:100]}")
    if not answer.endswith(b"\r\n\r\n") or answer.count(b"\r\n\r\n") > 1:
        raise ProxyFailure(f"the proxy {proxy.address} sent data after its answer to CONNECT")


class _ProxiedConnectionMixin:
    """Resolves and checks the callback's host, then connects to the proxy (and tunnels, for https)."""

    _dns_host: str
    port: int
    timeout: Any
    socket_options: Any
    tunnels = False

    def _new_conn(self) -> socket.socket:
        address = checked_address(self, self._dns_host, self.port, check=not settings.ESL_ALLOW_PRIVATE_CALLBACKS)
        proxy = egress_proxy()
        sock = _connect_to_proxy(proxy, timeout=self.timeout, socket_options=self.socket_options)
        if self.tunnels:
            host = f"[{address}]" if address.version == 6 else str(address)
            try:
                _open_tunnel(sock, proxy, f"{host}:{self.port}")
            except BaseException:
                sock.close()
                raise
        return sock


class ForwardedHTTPConnection(_ProxiedConnectionMixin, HTTPConnection):
    """A plain-http callback, requested from the proxy in absolute form (``forwarding_headers`` go with it)."""

    forwards_absolute_urls = True  # plain-http requests name the whole URL (``deliveries/connections.py``)


def forwarding_headers(headers: dict[str, str]) -> dict[str, str]:
    """A forwarded request's headers: the proxy's credentials added, when it has any."""
    authorization = egress_proxy().authorization
    return {**headers, "Proxy-Authorization": authorization} if authorization else headers


class TunnelledHTTPSConnection(_ProxiedConnectionMixin, HTTPSConnection):
    tunnels = True
