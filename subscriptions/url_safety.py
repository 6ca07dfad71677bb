"""SSRF defence: a callback URL must be https and must not reach an internal address.

Checked when a subscription is created or changed, and again before every
delivery (DNS may have changed since). ``ESL_ALLOW_PRIVATE_CALLBACKS=true`` lifts
both rules, for development and tests only.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeCallbackURL(ValueError):
    pass


def is_internal_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_internal_address(embedded)
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return True
    return not address.is_global or address.is_multicast


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeCallbackURL(f"The host {host!r} does not resolve.") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_callback_url(url: str, *, resolve_host: bool = True) -> None:
    """Raises ``UnsafeCallbackURL`` with a reason a person can act on."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeCallbackURL("The callback URL must be an absolute https URL.")
    if parts.username or parts.password:
        raise UnsafeCallbackURL("The callback URL must not carry credentials.")
    if settings.ESL_ALLOW_PRIVATE_CALLBACKS:
        return
    if parts.scheme != "https":
        raise UnsafeCallbackURL("The callback URL must use https.")
    host = parts.hostname
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    elif host.lower() == "localhost" or host.lower().endswith((".localhost", ".internal", ".local")):
        raise UnsafeCallbackURL(f"The host {host!r} is internal.")
    elif resolve_host:
        addresses = resolve(host, parts.port or 443)
    else:
        addresses = []
    internal = [str(address) for address in addresses if is_internal_address(address)]
    if internal:
        raise UnsafeCallbackURL(f"The host {host!r} resolves to an internal address ({internal[0]}).")
