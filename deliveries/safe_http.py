"""Connect-time SSRF guard: the address a delivery actually connects to is checked.

The pre-send check of the callback URL resolves the name once; DNS may answer
differently a moment later (rebinding). These connection classes resolve, refuse
any internal address (``is_internal_address``, the same rule as the URL check),
and connect to the very address they checked. TLS still verifies the certificate
against the host name.
"""

import socket
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import NewConnectionError

from subscriptions.internal_addresses import IPAddress, is_internal_address
from subscriptions.url_safety import UnsafeCallbackURL, resolve


def checked_address(connection: Any, host: str, port: int, *, check: bool = True) -> IPAddress:
    """The address to connect ``connection`` to for ``host``: the first it resolves to, refused (with a
    ``NewConnectionError`` whose message starts ``refused:``) when any is internal and ``check`` is on."""
    try:
        addresses = resolve(host, port)
    except UnsafeCallbackURL as exc:
        raise NewConnectionError(connection, f"refused: {exc}") from exc
    internal = [address for address in addresses if is_internal_address(address)] if check else []
    if internal:
        raise NewConnectionError(connection, f"refused: {host} resolves to an internal address ({internal[0]})")
    return addresses[0]


class _CheckedConnectionMixin:
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        host = self._dns_host
        self._dns_host = str(checked_address(self, host, self.port))
        try:
            return super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = host


class CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass
