"""SSRF defence: a callback URL must be https and must not reach an internal address.

Checked when a subscription is created or changed, and again before every
delivery (DNS may have changed since). ``ESL_ALLOW_PRIVATE_CALLBACKS=true`` lifts
both rules, for development and tests only; the URL must still be well formed.

Well formed is strict on purpose, so that this check and the HTTP client read a
URL the same way: no whitespace, control characters or backslashes; no
credentials (they would show wherever the URL does); a port from 1 to 65535;
an IPv4 literal only as four decimal numbers (``2130706433``, ``0177.0.0.1``,
``0x7f.1`` and ``127.1`` all mean 127.0.0.1 to some resolver); an IPv6 literal
without a zone; a name of letters, digits and hyphens once IDNA-encoded, as
the transport encodes it before sending.
"""

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna
from django.conf import settings

from subscriptions.internal_addresses import IPAddress, is_internal_address

MAX_URL_LENGTH = 2048  # Subscription.callback_url
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# WHATWG URL: a host whose last label is a number (decimal, or 0x-hex) is an IPv4 address.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_INTERNAL_NAME_SUFFIXES = (".localhost", ".internal", ".local")


class UnsafeCallbackURL(ValueError):
    pass


@dataclass(frozen=True)
class CallbackTarget:
    scheme: str
    host: str  # lowercase ASCII (IDNA-encoded), without brackets
    port: int
    address: IPAddress | None  # the IP literal, when the host is one


@functools.lru_cache(maxsize=1024)
def parse_callback_url(url: str) -> CallbackTarget:
    """The scheme, host and port of a well-formed callback URL; raises ``UnsafeCallbackURL`` and nothing else.

    Kept for the process's last thousand URLs: a worker checks each subscription's URL again for every batch it
    sends (DNS may have changed; the URL's own reading cannot), and the reading (IDNA, IP literals) was nearly half
    of the preparation of a batch of three deliveries to three URLs."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeCallbackURL(f"The callback URL must be at most {MAX_URL_LENGTH} characters long.")
    if _UNSAFE_CHARACTERS.search(url) or not url.isprintable():
        raise UnsafeCallbackURL("The callback URL must not contain spaces, control characters or backslashes.")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeCallbackURL("The callback URL is not a valid URL.") from exc
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UnsafeCallbackURL("The callback URL must be an absolute https URL.")
    if "@" in parts.netloc:
        raise UnsafeCallbackURL("The callback URL must not carry credentials.")
    host, port_text = _split_host_and_port(parts.netloc)
    port = _port(port_text, default=443 if parts.scheme == "https" else 80)
    if host.startswith("["):
        return CallbackTarget(parts.scheme, host[1:-1].lower(), port, _ipv6_literal(host[1:-1]))
    host = _ascii_host(host)
    if _NUMERIC_LABEL.fullmatch(host.removesuffix(".").rpartition(".")[2]):
        try:
            return CallbackTarget(parts.scheme, host, port, ipaddress.IPv4Address(host))
        except ValueError:
            raise UnsafeCallbackURL(
                f"The host {host!r} is not an IPv4 address as four decimal numbers (such as 203.0.113.7)."
            ) from None
    return CallbackTarget(parts.scheme, host, port, None)


def check_callback_url(url: str, *, resolve_host: bool = True) -> None:
    """Raises ``UnsafeCallbackURL`` with a reason a person can act on, and nothing else."""
    target = parse_callback_url(url)
    if settings.ESL_ALLOW_PRIVATE_CALLBACKS:
        return
    if target.scheme != "https":
        raise UnsafeCallbackURL("The callback URL must use https.")
    name = target.host.removesuffix(".")
    if target.address is not None:
        if is_internal_address(target.address):
            raise UnsafeCallbackURL(f"The address {target.host} is internal.")
        return
    if name == "localhost" or name.endswith(_INTERNAL_NAME_SUFFIXES):
        raise UnsafeCallbackURL(f"The host {target.host!r} is internal.")
    if "." not in name:  # resolved through the search domains: an internal name
        raise UnsafeCallbackURL(f"The host {target.host!r} is not a fully qualified domain name.")
    if not resolve_host:
        return
    internal = [str(address) for address in resolve(target.host, target.port) if is_internal_address(address)]
    if internal:
        raise UnsafeCallbackURL(f"The host {target.host!r} resolves to an internal address ({internal[0]}).")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to; raises ``UnsafeCallbackURL`` when there is none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:  # gaierror, and UnicodeError or NUL from encoding the name
        raise UnsafeCallbackURL(f"The host {host!r} does not resolve.") from exc
    addresses = [
        ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        for family, _, _, _, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]
    if not addresses:
        raise UnsafeCallbackURL(f"The host {host!r} does not resolve.")
    return addresses


def _split_host_and_port(netloc: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        end = netloc.find("]") + 1
        host, rest = netloc[:end], netloc[end:]
    else:
        host, colon, port = netloc.partition(":")
        rest = colon + port
    if rest and not rest.startswith(":"):
        raise UnsafeCallbackURL("The callback URL is not a valid URL.")
    return host, rest[1:] if rest else None


def _port(text: str | None, *, default: int) -> int:
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or text.startswith("0") or len(text) > 5 or int(text) > 65535:
        raise UnsafeCallbackURL("The callback URL's port must be a number from 1 to 65535.")
    return int(text)


def _ipv6_literal(text: str) -> ipaddress.IPv6Address:
    if "%" in text:
        raise UnsafeCallbackURL("The callback URL's IPv6 address must not name a zone.")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise UnsafeCallbackURL(f"[{text}] is not an IPv6 address.") from None


def _ascii_host(host: str) -> str:
    """The host as the transport will send it: IDNA-encoded (UTS 46) when it is not ASCII."""
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except UnicodeError:  # idna.IDNAError among them
            raise UnsafeCallbackURL(f"The host {host!r} is not a valid domain name.") from None
    host = host.lower()
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeCallbackURL(f"The host {host!r} is not a valid domain name.")
    return host
