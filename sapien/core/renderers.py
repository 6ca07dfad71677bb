"""JSON responses that always encode, whatever string they echo back."""

import re
from collections.abc import Mapping
from typing import Any

from rest_framework import renderers

SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


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
    """DRF's JSON renderer; a response echoing a lone surrogate (from a query string, a path, a header)
    shows U+FFFD in its place instead of failing to encode. Only such a response pays for the second pass."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return super().render(without_surrogates(data), accepted_media_type, renderer_context)
