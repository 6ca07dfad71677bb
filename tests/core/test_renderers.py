"""Whatever a response echoes back, it is valid UTF-8 JSON: a lone surrogate shows as U+FFFD.

Rendered by orjson, in the bytes DRF's own renderer writes.
"""

import datetime
import decimal
import json
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils.translation import gettext_lazy
from rest_framework import renderers
from rest_framework.exceptions import ErrorDetail
from rest_framework.test import APIClient

from sapien.core.renderers import JSONRenderer


def test_a_lone_surrogate_in_an_echoed_error_renders_as_the_replacement_character() -> None:
    data = {
        "error": {"code": "validation_error", "details": {"status": [ErrorDetail('"\ud800" is not a valid choice.')]}}
    }

    rendered = JSONRenderer().render(data)

    assert json.loads(rendered.decode("utf-8")) == {
        "error": {"code": "validation_error", "details": {"status": ['"\ufffd" is not a valid choice.']}}
    }


def test_surrogates_in_keys_and_lists_are_replaced_too() -> None:
    rendered = JSONRenderer().render({"\udc80": ["a\ud800b", 1, None]})

    assert json.loads(rendered) == {"\ufffd": ["a\ufffdb", 1, None]}


def test_what_encodes_renders_exactly_as_drf_renders_it() -> None:
    data = {"name": "Ada 😀", "line": "\u2028", "n": [1, 2.5, True]}

    assert JSONRenderer().render(data) == b'{"name":"Ada \xf0\x9f\x98\x80","line":"\\u2028","n":[1,2.5,true]}'


MOMENT = datetime.datetime(2026, 11, 26, 10, 55, 10, 512345, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "data",
    [
        {"at": MOMENT, "on_the_second": MOMENT.replace(microsecond=0), "naive": MOMENT.replace(tzinfo=None)},
        {"paris": MOMENT.astimezone(ZoneInfo("Europe/Paris")), "day": MOMENT.date(), "time": MOMENT.time()},
        {"duration": datetime.timedelta(seconds=90), "decimal": decimal.Decimal("1.10"), "set": {1}},
        {"id": uuid.UUID("cafb0655-b1b3-4aa7-b215-59c5dd48d7aa"), "lazy": gettext_lazy("Not found.")},
        {"detail": ErrorDetail("Bad.", code="invalid"), "bytes": b"raw", "tuple": (1, "a"), "nested": [{"a": None}]},
        {"big": 10**30, "smallest": -(2**63), "largest": 2**64 - 1, 1: "a key that is not a string"},
        {"separators": "\u2028 and \u2029", "dash": "\u2014", "emoji": "😀"},
        [],
        "plain",
    ],
)
def test_everything_renders_to_the_bytes_drfs_renderer_writes(data: Any) -> None:
    assert JSONRenderer().render(data) == renderers.JSONRenderer().render(data)


def test_an_indent_asked_for_is_honoured_as_drf_honours_it() -> None:
    rendered = JSONRenderer().render({"a": [1]}, "application/json; indent=2")

    assert rendered == b'{\n  "a": [\n    1\n  ]\n}'


def test_nothing_renders_as_no_body() -> None:
    assert JSONRenderer().render(None) == b""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/persons?status=%ED%A0%80", 400, "validation_error"),
        ("/api/persons?name=%ED%A0%80&status=%ED%B0%80", 400, "validation_error"),
        ("/api/v1/events?since=%ED%A0%80", 400, "validation_error"),
        ("/api/v1/availability?user_ids=%ED%A0%80", 400, "validation_error"),
        ("/api/persons/%ED%A0%80", 404, "not_found"),
    ],
)
def test_surrogate_bytes_in_a_query_string_or_path_get_a_4xx_in_valid_utf8(
    api: APIClient, path: str, status: int, code: str
) -> None:
    response = api.get(path)

    assert response.status_code == status
    assert json.loads(response.content.decode("utf-8"))["error"]["code"] == code
