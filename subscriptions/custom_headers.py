"""A subscription's custom request headers: which names and values may be sent with every attempt.

A receiver behind an API gateway wants its own credential (``Authorization``, ``X-Api-Key``) on each
request, so values are treated as secrets: write-only in the API, masked in the admin, never logged.
Refused: names that are not HTTP tokens; names Sapien sets itself or that would change how the request
is framed, routed or read (``RESERVED_NAMES``, and the ``X-Sapien-`` and ``webhook-`` families, whose
meaning receivers rely on); values with control characters (CR or LF would split the request) or
outside printable ASCII; more than ``MAX_HEADERS`` headers, a value past ``MAX_VALUE_LENGTH`` characters,
or more than ``MAX_TOTAL_SIZE`` characters in all.
"""

import re
from collections.abc import Mapping
from typing import Any

MAX_HEADERS = 20
MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 4096
MAX_TOTAL_SIZE = 8192  # names and values together

# Sapien's own headers, the body's framing and meaning (it is signed as sent), hop-by-hop headers, routing.
RESERVED_NAMES = frozenset(
    {
        "accept", "accept-encoding", "connection", "content-encoding", "content-length", "content-type",
        "expect", "host", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "traceparent", "tracestate", "transfer-encoding", "upgrade", "user-agent",
    }
)  # fmt: skip
RESERVED_PREFIXES = ("x-sapien-", "webhook-")

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_VALUE = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII, space and tab


class InvalidHeaders(ValueError):
    pass


def _shown(name: object) -> str:
    """A header name as an error message quotes it: its first 64 characters, so a refusal stays small."""
    text = repr(name)
    return text if len(text) <= 66 else f"{text[:65]}…"


def checked_headers(value: Any) -> dict[str, str]:
    """``value`` as headers to send, unchanged; raises ``InvalidHeaders`` with a reason that names the header
    but never its value (error messages end up in logs and responses)."""
    if not isinstance(value, Mapping):
        raise InvalidHeaders("Headers must be an object of header names to values.")
    if len(value) > MAX_HEADERS:
        raise InvalidHeaders(f"At most {MAX_HEADERS} headers are allowed; {len(value)} were given.")
    seen: set[str] = set()
    total = 0
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
            raise InvalidHeaders(
                f"Header names must be 1 to {MAX_NAME_LENGTH} letters, digits or !#$%&'*+.^_`|~- "
                f"({_shown(name)} is not)."
            )
        lowered = name.lower()
        if lowered in RESERVED_NAMES or lowered.startswith(RESERVED_PREFIXES):
            raise InvalidHeaders(
                f"The header {_shown(name)} is reserved: Sapien sets it, or it controls the connection."
            )
        if lowered in seen:
            raise InvalidHeaders(f"The header {_shown(name)} is given twice (names are case-insensitive).")
        seen.add(lowered)
        if not isinstance(text, str):
            raise InvalidHeaders(f"The value of {_shown(name)} must be a string.")
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidHeaders(f"The value of {_shown(name)} is longer than {MAX_VALUE_LENGTH} characters.")
        if not _VALUE.fullmatch(text) or text != text.strip():
            raise InvalidHeaders(
                f"The value of {_shown(name)} must be printable ASCII, without line breaks, control characters "
                "or leading and trailing spaces."
            )
        total += len(name) + len(text)
    if total > MAX_TOTAL_SIZE:
        raise InvalidHeaders(f"Headers may hold at most {MAX_TOTAL_SIZE} characters in all; these hold {total}.")
    return dict(value)


def header_names(headers: Mapping[str, str]) -> list[str]:
    """What may be shown of the headers: their names, sorted."""
    return sorted(headers, key=str.lower)
