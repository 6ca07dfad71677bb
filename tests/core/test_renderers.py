"""Whatever a response echoes back, it is valid UTF-8 JSON: a lone surrogate shows as U+FFFD."""

import json

import pytest
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
