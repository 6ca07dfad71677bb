"""Which IP addresses are internal: the one rule behind every SSRF check.

The check of a callback URL (``subscriptions.url_safety``) and the guard on each
delivery's connection (``deliveries.safe_http``) both ask ``is_internal_address``.

- An IPv6 address that carries an IPv4 address is judged by the IPv4 address it
  carries, because that is where its packets go (``embedded_ipv4``).
- Local-use NAT64 ``64:ff9b:1::/48`` is internal whole: where the IPv4 address
  sits inside it depends on the site's prefix length (RFC 8215).
- Any other IPv6 address outside global unicast ``2000::/3`` is internal
  (site-local ``fec0::/10``, unique-local, link-local, multicast, discard-only…).
- The rest must be global by ``ipaddress``'s tables, not multicast, not shared
  address space ``100.64.0.0/10``, and not on the denylist below.

``ipaddress.is_global`` alone is not enough: it does not look inside these
forms, and its tables differ between Python releases.
"""

import functools
import ipaddress

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata and platform endpoints: never a webhook receiver. Most lie in ranges refused
# anyway; listing them keeps them refused whatever the range rules become, and 168.63.129.16
# is a public address. ``ESL_CALLBACK_DENYLIST`` adds addresses or networks to these.
METADATA_AND_PLATFORM_ADDRESSES = (
    "169.254.169.254",  # instance metadata: AWS, Google Cloud, Azure, Oracle, OpenStack, DigitalOcean…
    "169.254.170.2",  # AWS ECS task metadata and credentials
    "169.254.170.23",  # Amazon EKS Pod Identity agent
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "fd00:ec2::23",  # Amazon EKS Pod Identity agent over IPv6
    "fd20:ce::254",  # Google Cloud metadata over IPv6
    "168.63.129.16",  # Azure WireServer and platform DNS
    "100.100.100.200",  # Alibaba Cloud metadata
    "192.0.0.192",  # Oracle Cloud metadata (legacy)
    "169.254.42.42",  # Scaleway metadata
    "169.254.0.23",  # Tencent Cloud metadata
)

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_LOCAL_USE_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
# The forms that carry an IPv4 address in their last 32 bits (IPv4-mapped has ``ipv4_mapped``).
_LOW_32_BITS_FORMS = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix, RFC 6052
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible, deprecated by RFC 4291; holds :: and ::1 too
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated, RFC 2765
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (Teredo: the server and the client); () if none."""
    if address.ipv4_mapped is not None:  # ::ffff:0:0/96
        return (address.ipv4_mapped,)
    if any(address in network for network in _LOW_32_BITS_FORMS):
        return (ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF),)
    if address.sixtofour is not None:  # 2002::/16
        return (address.sixtofour,)
    if address.teredo is not None:  # 2001::/32; ``teredo`` undoes the client's obfuscation
        return address.teredo
    return ()


def is_internal_address(address: IPAddress) -> bool:
    """True when a connection to ``address`` could reach something that is not a public receiver."""
    if any(address in network for network in denylist()):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_USE_NAT64:
            return True
        carried = embedded_ipv4(address)
        if carried:
            return any(is_internal_address(ipv4) for ipv4 in carried)
        return address not in _GLOBAL_UNICAST or not address.is_global
    return address in _SHARED_ADDRESS_SPACE or address.is_multicast or not address.is_global


def denylist() -> tuple[IPNetwork, ...]:
    """The built-in metadata and platform addresses plus ``ESL_CALLBACK_DENYLIST``."""
    return _networks((*METADATA_AND_PLATFORM_ADDRESSES, *settings.ESL_CALLBACK_DENYLIST))


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
