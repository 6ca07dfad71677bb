"""JSON request bodies, refused whole when they cannot be trusted: nested too deep, or not Unicode.

A body nesting more than ``MAX_JSON_DEPTH`` arrays and objects, text that is not valid in its charset,
or a string with a lone surrogate (``"\\ud800"``: no UTF-8 can store or echo it) is a 400
``malformed_request``. ``sapien.core.middleware.JSONBodyMiddleware`` applies these limits to every JSON
body before any view, DRF or not, can read it; DRF's parser reuses what it parsed, so a body is parsed once.

orjson reads a UTF-8 body. What it refuses, and a body it would read otherwise than the standard library
(an integer of 19 digits or more, which it may turn into a float), the standard library reads, as it
always has: the same values, the same refusals in the same words.
"""

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from sapien.core.renderers import SURROGATE

MAX_JSON_DEPTH = 64
_PARSED = "_sapien_parsed_json"  # where the middleware leaves the parsed body for DRF's parser
# Lone surrogates can only come from escapes (strict decoding refuses them as bytes); paired escapes
# are joined into one character by the decoder. Without any such escape there is nothing to look for.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Digits as "0", everything else as a space: then 19 digits in a row (an integer orjson may not keep exact,
# beyond 64 bits) is one substring search, where a regular expression would try every position.
_DIGITS_ONLY = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_NUMBER = b"0" * 19


class MalformedJSON(ValueError):
    """Why a body is refused, in words for the caller."""


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number.")


def _containers(value: Any) -> Iterator[tuple[Any, int]]:
    """Every array and object in ``value`` with its depth (1 for the outermost), iteratively."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, object keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for node, _ in _containers(value):
            items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            yield from (item for item in items if isinstance(item, str))


def text_encoding(name: str | None) -> str:
    """The charset a body is decoded with; only text encodings (``bz2_codec`` would inflate a small body)."""
    encoding = name or settings.DEFAULT_CHARSET
    try:
        "".encode(encoding)
    except (LookupError, UnicodeError) as exc:
        raise MalformedJSON(f'The charset "{encoding}" is not a text encoding this API reads.') from exc
    return encoding


def _refuse_too_deep(data: Any, brackets: int) -> None:
    """``brackets``: the body's opening brackets; fewer than the limit cannot nest beyond it (most bodies)."""
    if brackets > MAX_JSON_DEPTH and isinstance(data, dict | list):
        if any(depth > MAX_JSON_DEPTH for _, depth in _containers(data)):
            raise MalformedJSON(f"The JSON body nests more than {MAX_JSON_DEPTH} arrays or objects.")


def parse_json_body(raw: bytes, encoding: str | None = None) -> Any:
    """The parsed body, or ``MalformedJSON`` saying why not. Nothing that passes nests beyond ``MAX_JSON_DEPTH``."""
    charset = text_encoding(encoding)
    if codecs.lookup(charset).name == "utf-8" and _LONG_NUMBER not in raw.translate(_DIGITS_ONLY):
        try:
            data = orjson.loads(raw)  # refuses lone surrogates, NaN and infinite numbers itself
        except orjson.JSONDecodeError:
            pass  # the standard library says why, below
        else:
            _refuse_too_deep(data, raw.count(b"[") + raw.count(b"{"))  # UTF-8 has these bytes only as themselves
            return data
    try:
        text = raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"The body is not valid {charset} text.") from exc
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:  # far deeper than the limit: the decoder itself gave up
        raise MalformedJSON(f"The JSON body nests more than {MAX_JSON_DEPTH} arrays or objects.") from exc
    except ValueError as exc:
        raise MalformedJSON(f"JSON parse error - {exc}") from exc
    _refuse_too_deep(data, text.count("[") + text.count("{"))
    if _SURROGATE_ESCAPE.search(text) and any(SURROGATE.search(string) for string in _strings(data)):
        raise MalformedJSON("The JSON body has a lone surrogate escape (such as \\ud800): strings must be Unicode.")
    return data


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def parse_and_keep_json_body(request: HttpRequest) -> None:
    """Parses a JSON body of ``request`` (if it has one) and keeps it for DRF's parser; ``MalformedJSON`` if refused."""
    if is_json_media_type(request.META.get("CONTENT_TYPE", "")) and (raw := request.body):
        setattr(request, _PARSED, parse_json_body(raw, request.encoding))


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the limits above; the default parser of the API."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        context = parser_context or {}
        django_request = getattr(context.get("request"), "_request", None)
        if hasattr(django_request, _PARSED):
            return getattr(django_request, _PARSED)
        try:
            return parse_json_body(stream.read(), context.get("encoding"))
        except MalformedJSON as exc:
            raise ParseError(str(exc)) from exc
