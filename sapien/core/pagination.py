"""Keyset (seek) pagination for every list: newest first, by opaque cursor, without a total count.

A page is one range scan of an index on (…, ts DESC, id DESC)::

    WHERE (ts, id) < (cursor_ts, cursor_id) ORDER BY ts DESC, id DESC LIMIT page_size + 1

so page 10,000 costs what page 1 costs, and no ``COUNT(*)`` is run. A cursor names the last row shown, not
an offset: rows added at the top between two requests neither repeat nor hide a row of the next page.
The extra row only says whether there is a next page. ``previous`` reads the rows just above the first row
shown the same way, upwards (``>`` and ascending), and shows them newest first.

A cursor is ``base64url(direction, ts in µs, id, HMAC)``: signed with ``SECRET_KEY`` for the list's path,
so a cursor that was altered, made up, or issued by another list is refused (``400 invalid_cursor``)
before it reaches SQL. Rotating ``SECRET_KEY`` invalidates outstanding cursors: clients start again.
"""

import base64
import binascii
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import BooleanField, F, Func, Model, QuerySet, Value
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from sapien.core.errors import ApplicationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
DEFAULT_CURSOR_ORDERING = ("-created_at", "-id")

# Older or newer than the row, or (capitals) the row too.
_DIRECTIONS = {b"n": (False, False), b"p": (True, False), b"N": (False, True), b"P": (True, True)}
_POSITION = struct.Struct("!cq16s")  # direction, microseconds since the epoch, id
_SIGNATURE_BYTES = 16
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class InvalidCursor(ApplicationError):
    default_code = "invalid_cursor"
    default_detail = (
        "This cursor was not issued by this list: follow the next and previous links as given, "
        "or start again without a cursor."
    )


@dataclass(frozen=True)
class Position:
    """Where a page starts: just below the row at (``moment``, ``id``), or, ``newer``, just above it; that row
    included when ``inclusive``."""

    newer: bool
    moment: datetime
    id: uuid.UUID
    inclusive: bool = False


def encode_cursor(position: Position, *, list_path: str) -> str:
    direction = next(key for key, value in _DIRECTIONS.items() if value == (position.newer, position.inclusive))
    packed = _POSITION.pack(direction, (position.moment - _EPOCH) // _MICROSECOND, position.id.bytes)
    return base64.urlsafe_b64encode(packed + _signature(packed, list_path=list_path)).rstrip(b"=").decode()


def decode_cursor(token: str, *, list_path: str) -> Position:
    """The position a cursor of this list names; anything else, whatever it holds, is ``InvalidCursor``."""
    if _TOKEN.fullmatch(token) is None:
        raise InvalidCursor(details={"cursor": ["Not a cursor."]})
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except binascii.Error as exc:
        raise InvalidCursor(details={"cursor": ["Not a cursor."]}) from exc
    packed, signature = raw[: _POSITION.size], raw[_POSITION.size :]
    if len(packed) != _POSITION.size or not constant_time_compare(signature, _signature(packed, list_path=list_path)):
        raise InvalidCursor(details={"cursor": ["Not a cursor of this list."]})
    direction, microseconds, id_bytes = _POSITION.unpack(packed)
    try:
        moment = _EPOCH + microseconds * _MICROSECOND
    except OverflowError as exc:  # signed with our key, so never issued by us: still a 400, never a 500
        raise InvalidCursor(details={"cursor": ["Not a cursor of this list."]}) from exc
    if direction not in _DIRECTIONS:
        raise InvalidCursor(details={"cursor": ["Not a cursor of this list."]})
    newer, inclusive = _DIRECTIONS[direction]
    return Position(newer=newer, moment=moment, id=uuid.UUID(bytes=id_bytes), inclusive=inclusive)


def _signature(packed: bytes, *, list_path: str) -> bytes:
    """Binds a cursor to its list: the same path, with or without its trailing slash."""
    salt = f"sapien.core.pagination:{list_path.rstrip('/')}"
    return salted_hmac(salt, packed, algorithm="sha256").digest()[:_SIGNATURE_BYTES]


class _RowComparison(Func):
    """``(a, b) < (x, y)`` (or ``>``, ``<=``, ``>=``): one range of a B-tree index on (a, b), which
    ``a < x OR (a = x AND b < y)`` is not."""

    output_field = BooleanField()

    def __init__(self, operator: str, fields: tuple[str, str], values: tuple[datetime, uuid.UUID]) -> None:
        self.operator = operator
        super().__init__(F(fields[0]), F(fields[1]), Value(values[0]), Value(values[1]))

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        sql, params = [], []
        for expression in self.get_source_expressions():
            part_sql, part_params = compiler.compile(expression)
            sql.append(part_sql)
            params.extend(part_params)
        return f"({sql[0]}, {sql[1]}) {self.operator} ({sql[2]}, {sql[3]})", params


class CursorPagination(BasePagination):
    """``?cursor=…&page_size=N``; answers ``{"next", "previous", "results"}``.

    The view's ``cursor_ordering`` names a timestamp and a UUID field, both descending, never null, that an
    index of the filtered query ends with (default ``("-created_at", "-id")``).
    """

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(  # type: ignore[override]  # a list of rows cannot be sought by key: a QuerySet only
        self, queryset: QuerySet[Any, Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        self.fields = self._ordering_of(view)
        page_size = self._page_size_of(request)
        token = request.query_params.get(self.cursor_query_param, "")
        position = decode_cursor(token, list_path=request.path) if token else None  # empty: no cursor
        self.next: Position | None = None
        self.previous: Position | None = None

        if position is not None and position.newer:
            # The rows just above the position: read upwards, then shown newest first.
            above = list(self._beyond(queryset, position).order_by(*self.fields)[: page_size + 1])
            rows = above[:page_size][::-1]
            if rows:
                self.next = self._position_of(rows[-1], newer=False)
                self.previous = self._position_of(rows[0], newer=True) if len(above) > page_size else None
                return rows
            position = None  # nothing above it any more (deleted): the first page, rather than a dead end

        below = list(
            (queryset if position is None else self._beyond(queryset, position))
            .order_by(*(f"-{field}" for field in self.fields))[: page_size + 1]
        )  # fmt: skip
        rows = below[:page_size]
        if rows:
            self.next = self._position_of(rows[-1], newer=False) if len(below) > page_size else None
        if position is not None and rows:  # nothing is above the first page, as of this request
            self.previous = self._position_of(rows[0], newer=True)
        elif position is not None:  # nothing below it any more (deleted): back to it, and it included
            self.previous = Position(newer=True, moment=position.moment, id=position.id, inclusive=True)
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self._link(self.next), "previous": self._link(self.previous), "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        def link(direction: str) -> dict[str, Any]:
            description = f"The {direction} page, with this request's other query parameters; null if there is none."
            return {"type": "string", "format": "uri", "nullable": True, "description": description}

        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": link("next (older)"), "previous": link("previous (newer)"), "results": schema},
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque: taken from a next or previous link of this list. Absent: the newest page.",
                "schema": {"type": "string", "pattern": f"^{_TOKEN.pattern}$"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
            },
        ]

    @staticmethod
    def _ordering_of(view: Any) -> tuple[str, str]:
        ts_field, id_field = getattr(view, "cursor_ordering", DEFAULT_CURSOR_ORDERING)
        assert ts_field.startswith("-") and id_field.startswith("-"), "lists are newest first: both descending"
        return ts_field[1:], id_field[1:]

    def _page_size_of(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":  # an empty query value is no value, as for filters
            return DEFAULT_PAGE_SIZE
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and 1 <= int(raw) <= MAX_PAGE_SIZE):
            raise ValidationError({self.page_size_query_param: [f"Must be an integer from 1 to {MAX_PAGE_SIZE}."]})
        return int(raw)

    def _beyond(self, queryset: QuerySet[Any, Any], position: Position) -> QuerySet[Any, Any]:
        operator = (">" if position.newer else "<") + ("=" if position.inclusive else "")
        return queryset.filter(_RowComparison(operator, self.fields, (position.moment, position.id)))

    def _position_of(self, row: Model, *, newer: bool) -> Position:
        ts_field, id_field = self.fields
        return Position(newer=newer, moment=getattr(row, ts_field), id=getattr(row, id_field))

    def _link(self, position: Position | None) -> str | None:
        if position is None:
            return None
        token = encode_cursor(position, list_path=self.request.path)
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, token)
