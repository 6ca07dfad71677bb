"""JSON responses that always encode, whatever string they echo back, rendered by orjson.

The bytes are DRF's ``JSONRenderer``'s: compact, UTF-8, ``\\u2028`` and ``\\u2029`` escaped, dates and
times as DRF's encoder writes them (floats may be spelled otherwise: ``0.00001`` for ``1e-05``). What
orjson will not write (a lone surrogate, an integer beyond 64 bits, a key that is not a string) and an
``indent`` asked for in ``Accept`` go through DRF's renderer instead.
"""

import re
from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"
# Dates and times through DRF's encoder (``default``), for its format; everything else orjson knows as DRF does.
ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
_drf_default = JSONEncoder().default


def without_surrogates(value: Any) -> Any:
    """``value`` with every surrogate code point (which UTF-8 cannot encode) in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return SURROGATE.sub(REPLACEMENT_CHARACTER, value)
    if isinstance(value, dict):
        return {without_surrogates(key): without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_surrogates(item) for item in value]
    return value


class JSONRenderer(renderers.JSONRenderer):
    """orjson, with DRF's output; a response echoing a lone surrogate (from a query string, a path, a header)
    shows U+FFFD in its place instead of failing to encode. Only such a response pays for the second pass."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is None:
            try:
                rendered = orjson.dumps(data, default=_drf_default, option=ORJSON_OPTIONS)
            except orjson.JSONEncodeError:
                pass  # DRF's renderer below, which either writes it or says why not
            else:
                if b"\xe2" not in rendered:  # the first byte of both in UTF-8; one memchr, where a search is slower
                    return rendered
                # As DRF's: JSON that is also a strict JavaScript subset. UTF-8 finds these bytes nowhere else.
                return rendered.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return super().render(without_surrogates(data), accepted_media_type, renderer_context)
