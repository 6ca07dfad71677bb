"""Name resolution for the whole in-process suite answers loopback only: no test can ask real DNS.

Registered for the whole suite in ``tests/conftest.py``.
"""

import ipaddress
import socket
from typing import Any

import pytest

_real_getaddrinfo = socket.getaddrinfo


def loopback_getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[tuple[Any, ...]]:
    """``socket.getaddrinfo`` that never sends a query: IP literals are parsed, every name is loopback.

    An IP literal (or no host) is handed to the real resolver with ``AI_NUMERICHOST``, which parses and
    never looks anything up. A name is encoded as ``socket.getaddrinfo`` encodes it (a bad label raises
    ``UnicodeError``), then answers ``127.0.0.1``, or ``::1`` when ``AF_INET6`` is asked for.
    """
    numeric = flags | socket.AI_NUMERICHOST
    try:
        return _real_getaddrinfo(host, port, family, type, proto, numeric)
    except socket.gaierror as refused:
        if _is_ip_literal(host):
            raise refused from None  # a literal of another family, or a bad port: as the real resolver says
    if isinstance(host, str):
        host.encode("idna")
    loopback = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    return _real_getaddrinfo(loopback, port, family, type, proto, numeric)


def _is_ip_literal(host: Any) -> bool:
    try:
        _real_getaddrinfo(host, None, 0, 0, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        return False
    return True


def loopback_gethostbyaddr(address: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyaddr`` that never sends a query: a loopback address is ``localhost``, all else unknown.

    ``http.server`` asks it (through ``socket.getfqdn``) for the address a test receiver binds.
    """
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise socket.herror(1, "Unknown host")
    return "localhost", [], [address]


@pytest.fixture(autouse=True)
def _loopback_only_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process test resolves through ``loopback_getaddrinfo``: no real DNS query, ever.

    It replaces ``socket.getaddrinfo`` itself (and ``socket.gethostbyaddr``, for reverse lookups), so
    it covers the callback URL check and the connect-time guard (both resolve through
    ``subscriptions.url_safety.resolve``), urllib3 when private callbacks are allowed, and any client.
    A name that passes the URL check therefore resolves to loopback and is refused as internal: a test
    that needs a host name accepted sets ``ESL_ALLOW_PRIVATE_CALLBACKS`` (the form is then checked
    without resolving) or uses a public IP literal that it never sends to.
    A test may replace the resolver again, with one that answers loopback addresses only.
    Processes a test starts (the end-to-end workers, a ``python -c``) are outside it.
    """
    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyaddr", loopback_gethostbyaddr)
