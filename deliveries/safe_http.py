"""Connect-time SSRF guard: the address a delivery actually connects to is checked.

The pre-send check of the callback URL resolves the name once; DNS may answer
differently a moment later (rebinding). These connection classes resolve, refuse
any internal address (``is_internal_address``, the same rule as the URL check),
and connect to the very address they checked. TLS still verifies the certificate
against the host name.
"""

import socket
from typing import Any

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from subscriptions.internal_addresses import is_internal_address
from subscriptions.url_safety import UnsafeCallbackURL, resolve


class _CheckedConnectionMixin:
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        host = self._dns_host
        try:
            addresses = resolve(host, self.port)
        except UnsafeCallbackURL as exc:
            raise NewConnectionError(self, f"refused: {exc}") from exc  # type: ignore[arg-type]
        internal = [address for address in addresses if is_internal_address(address)]
        if internal:
            message = f"refused: {host} resolves to an internal address ({internal[0]})"
            raise NewConnectionError(self, message)  # type: ignore[arg-type]
        self._dns_host = str(addresses[0])
        try:
            return super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = host


class CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class PublicOnlyPoolManager(PoolManager):
    """A pool manager whose connections can only reach public addresses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}
