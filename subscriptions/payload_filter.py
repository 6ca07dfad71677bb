"""Payload filters: a JSON document an event must contain for a subscription to receive it.

Containment is PostgreSQL's ``jsonb @>``, and only PostgreSQL evaluates it: the relay's fan-out in its one
statement (``deliveries/relay.py``), a replay's selection, and ``filter_matches`` for the API's test, so that
the test cannot disagree with the relay. Objects match when every key of the filter is in the event with a
matching value (other keys are ignored); arrays match when every element of the filter's array is contained
in some element of the event's; scalars match when equal (``1`` and ``1.0`` are equal, ``"1"`` is not).

A filter is checked before it is stored: an object, at most ``MAX_FILTER_DEPTH`` arrays and objects deep and
``MAX_FILTER_BYTES`` of compact JSON, with no string PostgreSQL's ``jsonb`` cannot hold (NUL, lone
surrogates) and no number JSON cannot write (NaN, infinities). ``{}`` would match every event: it is stored
as no filter (null).
"""

import json
import math
from collections.abc import Iterator
from typing import Any

from django.db import connection

from sapien.events.selectors import body_as_jsonb_sql

MAX_FILTER_DEPTH = 8
MAX_FILTER_BYTES = 4096


class InvalidFilter(ValueError):
    """Why a filter (or a sample event) is refused, in words for the caller."""


def _nodes(value: Any, depth: int = 1) -> Iterator[tuple[Any, int]]:
    """Every value in ``value`` (keys included, as strings) with the depth of the container holding it."""
    stack = [(value, depth)]
    while stack:
        node, level = stack.pop()
        yield node, level
        if isinstance(node, dict):
            stack.extend((key, level) for key in node)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)


def _refuse_unstorable(value: Any, *, what: str, max_depth: int | None) -> None:
    """Refuses what ``jsonb`` cannot hold, and (with ``max_depth``) nesting beyond it."""
    for node, level in _nodes(value):
        if isinstance(node, dict | list) and max_depth is not None and level > max_depth:
            raise InvalidFilter(f"The {what} nests more than {max_depth} arrays or objects.")
        if isinstance(node, str):
            if "\x00" in node:
                raise InvalidFilter(f"The {what} has a NUL character (\\u0000), which PostgreSQL cannot store.")
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidFilter(
                    f"The {what} has a lone surrogate (such as \\ud800): strings must be Unicode"
                ) from exc
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidFilter(f"The {what} has a number JSON cannot write ({node}).")


def checked_filter(value: Any) -> dict[str, Any] | None:
    """The filter to store: ``value`` itself, or None for no filter (null or ``{}``); ``InvalidFilter`` if refused."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidFilter(f"A filter is a JSON object, not {_json_kind(value)}.")
    _refuse_unstorable(value, what="filter", max_depth=MAX_FILTER_DEPTH)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_FILTER_BYTES:
        raise InvalidFilter(f"The filter is {size} bytes of JSON; at most {MAX_FILTER_BYTES} are allowed.")
    return value or None


def checked_sample_event(value: Any) -> dict[str, Any]:
    """A sample event to test a filter against: a JSON object ``jsonb`` can hold; ``InvalidFilter`` if not."""
    if not isinstance(value, dict):
        raise InvalidFilter(f"An event is a JSON object, not {_json_kind(value)}.")
    _refuse_unstorable(value, what="event", max_depth=None)  # the request parser already bounds its depth
    return value


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), "null" if value is None else "an unknown value")


def filter_matches(*, payload_filter: dict[str, Any] | None, event: dict[str, Any] | str) -> bool:
    """Whether ``event`` (an object, or the JSON text of a stored event) passes the filter, decided by
    PostgreSQL's ``@>`` as the relay decides it. No filter passes everything."""
    if payload_filter is None:
        return True
    body = event if isinstance(event, str) else json.dumps(event)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {body_as_jsonb_sql('given.body')} @> given.filter"
            " FROM (SELECT %s::text AS body, %s::jsonb AS filter) AS given",
            [body, json.dumps(payload_filter)],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def filter_passes_sql(*, body_jsonb: str, payload_filter: str) -> str:
    """SQL, true when the ``jsonb`` filter ``payload_filter`` is NULL (no filter) or ``body_jsonb`` contains it."""
    return f"({payload_filter} IS NULL OR {body_jsonb} @> {payload_filter})"
