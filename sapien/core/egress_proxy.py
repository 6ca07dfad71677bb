"""``ESL_EGRESS_PROXY_URL`` read once: the forward proxy every delivery goes through, or none.

Read by the settings module, so that a bad value stops every process at start, and by the transport.
Error messages never quote the URL: it may carry the proxy's credentials (``http://user:password@host:3128``).
"""

import base64
import functools
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class EgressProxy:
    host: str
    port: int
    authorization: str = field(default="", repr=False)  # a Proxy-Authorization value; secret

    @property
    def address(self) -> str:
        """What may be shown of the proxy: host and port, never its credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@functools.lru_cache(maxsize=4)
def parse_egress_proxy_url(url: str) -> EgressProxy | None:
    """The proxy ``url`` names (``None`` for an empty one); raises ``ValueError`` with a reason that omits the URL."""
    if not url:
        return None
    if _UNSAFE_CHARACTERS.search(url) or not url.isprintable():
        raise ValueError("the URL must not contain spaces, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("not a URL with a valid port, such as http://proxy.internal:3128.") from None
    if parts.scheme != "http":
        raise ValueError(
            "the URL must start with http:// (https callbacks are still encrypted end to end, through CONNECT; "
            "TLS to the proxy itself is not supported)."
        )
    if not parts.hostname:
        raise ValueError("the URL names no host, as in http://proxy.internal:3128.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the URL must name only the proxy's host and port (and credentials), no path or query.")
    authorization = ""
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = f"Basic {base64.b64encode(credentials).decode('ascii')}"
    return EgressProxy(host=parts.hostname, port=port or 80, authorization=authorization)
