"""Where the API parts from its schema on purpose, each as a narrow rule with its reason.

Every schemathesis check runs on every request. A failure of ``negative_data_rejection`` (the API took
data the schema forbids) or ``positive_data_acceptance`` (it refused data the schema allows) is
forgiven only when one of these rules explains it; any other failure, and every other check, stands.

- ``LENIENCIES``: input the API takes although the schema forbids it, harmlessly, as DRF and
  django-filter do.
- ``RULES_BEYOND_THE_SCHEMA``: refusals the schema cannot express (a moment in the future, an existing
  object, an IANA zone, a callback URL that is safe to call), recognised by the error the API gives.
- ``SCHEMA_GAPS``: refusals the schema could state but does not yet; each entry is to go when the
  schema states its rule.
"""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rest_framework.exceptions import ValidationError
from rest_framework.fields import BooleanField, CharField, Field
from schemathesis import Case, Response
from schemathesis.core.failures import AcceptedNegativeData, Failure
from schemathesis.openapi.checks import RejectedPositiveData


@dataclass(frozen=True)
class Leniency:
    """Input the schema forbids and the API takes: ``applies`` recognises it in the request."""

    why: str
    applies: Callable[[Case, Response], bool]


@dataclass(frozen=True)
class Refusal:
    """An error the API answers with: ``field`` (``None``: any field) and a message pattern, or an error code."""

    why: str
    field: str | None = None
    message: str | None = None
    code: str | None = None

    def explains(self, code: str, field: str, message: str) -> bool:
        if self.code is not None:
            return code == self.code
        assert self.message is not None
        return (self.field is None or field == self.field) and re.fullmatch(
            self.message, message, re.DOTALL
        ) is not None


def _query_values(response: Response, name: str | None = None) -> Iterator[str]:
    """The query values as sent (a generated object or list travels as text too)."""
    query = parse_qs(urlsplit(response.request.url or "").query, keep_blank_values=True)
    for key, values in query.items():
        if name is None or key == name:
            yield from values


def _body_properties(case: Case) -> dict[str, dict[str, Any]]:
    """The JSON body's declared top-level properties, ``$ref`` resolved."""
    raw = case.operation.schema.raw_schema
    operation = raw["paths"][case.operation.path][case.operation.method.lower()]
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = raw["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema.get("properties", {})


def _body_items(case: Case) -> Iterator[tuple[dict[str, Any], Any]]:
    if isinstance(case.body, dict):
        properties = _body_properties(case)
        for name, value in case.body.items():
            if name in properties:
                yield properties[name], value


def _empty_query_value(case: Case, response: Response) -> bool:
    return any(value == "" for value in _query_values(response))


def _as_received(value: str) -> str:
    """Text as DRF reads it: two generated lone surrogates that form a pair arrive as one character, and
    surrounding whitespace is trimmed."""
    received: str = json.loads(json.dumps(value))
    return received.strip()


def _short_enough_as_received(case: Case, response: Response) -> bool:
    return any(
        isinstance(value, str) and len(value) > spec.get("maxLength", len(value)) >= len(_as_received(value))
        for spec, value in _body_items(case)
    )


def _empty_string_for_a_reference(case: Case, response: Response) -> bool:
    return any(
        value == "" and spec.get("format") == "uuid" and spec.get("nullable") for spec, value in _body_items(case)
    )


def _taken_by(field: Field, value: Any) -> bool:
    try:
        field.to_internal_value(value)
    except ValidationError:
        return False
    return True


def _number_for_text(case: Case, response: Response) -> bool:
    return any(
        spec.get("type") == "string" and not isinstance(value, str) and _taken_by(CharField(), value)
        for spec, value in _body_items(case)
    )


def _boolean_spelled_otherwise(case: Case, response: Response) -> bool:
    return any(
        spec.get("type") == "boolean" and not isinstance(value, bool) and _taken_by(BooleanField(), value)
        for spec, value in _body_items(case)
    )


LENIENCIES = [
    Leniency("An empty query value is no filter at all (django-filter).", _empty_query_value),
    Leniency(
        "Text too long as generated is short enough as received: trimmed, surrogate pairs joined.",
        _short_enough_as_received,
    ),
    Leniency(
        "An empty string for an optional reference means none, as null does (DRF).", _empty_string_for_a_reference
    ),
    Leniency("A number given for text is taken as its decimal text (DRF's CharField).", _number_for_text),
    Leniency(
        '0, 1, "true", "off" and the like are taken as booleans (DRF\'s BooleanField).', _boolean_spelled_otherwise
    ),
]

RULES_BEYOND_THE_SCHEMA = [
    Refusal("A moment that must be in the future.", message=r"Must be in the future\."),
    Refusal("A time range ends after it starts.", field="until", message=r"Must be after since\."),
    Refusal("A reference to an object that does not exist.", message=r'Invalid pk ".*" - object does not exist\.'),
    Refusal("Time zones are IANA names.", field="timezone", message=r"Must be an IANA time zone name, such as .*"),
    Refusal("Text never holds NUL: PostgreSQL cannot store it.", message=r"Null characters are not allowed\."),
    Refusal(
        "Text is trimmed, so whitespace alone is blank (DRF's CharField).", message=r"This field may not be blank\."
    ),
    Refusal("Event types and patterns must name known events.", field="events", message=r"Unknown event types: .*"),
    Refusal("A callback URL must be https and safe to call.", code="invalid_callback_url"),
    Refusal("A cursor is one a next or previous link of the same list gave, signed.", code="invalid_cursor"),
    Refusal(
        "An Idempotency-Key names one request: generated keys repeat across requests (422, as the IETF draft says).",
        code="idempotency_key_reused",
    ),
    Refusal("Connection ids of OAuth sessions are reserved.", field="connection_id", message=r"Must not start with .*"),
    Refusal(
        "A payload filter or sample event is JSON that PostgreSQL's jsonb holds, a filter small and shallow.",
        message=r"The (filter|event) (nests more than|is \d+ bytes|has a NUL|has a lone surrogate|has a number) .*",
    ),
    Refusal(
        "Custom header names are HTTP tokens that Sapien does not set itself, and their values printable text:"
        " OpenAPI 3.0 cannot state rules on an object's property names.",
        field="headers",
        message=r"(Header names must be|The header|The value of|Headers may hold|At most \d+ headers) .*",
    ),
    Refusal(
        "A filter test takes exactly one of event and event_id.",
        field="event",
        message=r"Give either event or event_id, not both nor neither\.",
    ),
]

SCHEMA_GAPS = [
    Refusal(
        "Person.attributes is a JSON object; the schema allows any value, null too.",
        field="attributes",
        message=r"Must be a JSON object\.|This field may not be null\.",
    ),
    Refusal(
        "user_ids is one or more comma-separated UUIDs; the schema says an optional string.",
        field="user_ids",
        message=r"Name at least one user id\.|Every id must be a UUID\.",
    ),
    Refusal(
        "A subscription names at least one event; the schema has no minItems.",
        field="events",
        message=r"This list may not be empty\.",
    ),
    Refusal(
        "A schedule rule names at least one day; the schema has no minItems.",
        field="days_of_week",
        message=r"This list may not be empty\.",
    ),
    Refusal(
        "A schedule rule's times are HH:MM; the schema says any string.",
        message=r"Must be a time as HH:MM \(00:00 to 23:59\)\.",
    ),
]


def _messages(field: str, details: Any) -> Iterator[tuple[str, str]]:
    """(field, message) of each message in ``details``; a nested field (``rules.0.start_time``) by its own name."""
    if isinstance(details, dict):
        for key, value in details.items():
            yield from _messages(field if str(key).isdigit() else str(key), value)
    elif isinstance(details, list):
        for value in details:
            yield from _messages(field, value)
    else:
        yield field, str(details)


def _errors(response: Response) -> Iterator[tuple[str, str, str]]:
    """(code, field, message) of each error in the contract's error shape."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return
    code, details = error.get("code", ""), error.get("details")
    if not details:
        yield code, "", error.get("message", "")
        return
    for field, message in _messages("", details):
        yield code, field, message


_AT_LEAST = re.compile(r"Ensure this field has at least (\d+) characters\.")


def _too_short_as_received(case: Case, field: str, message: str) -> bool:
    """A top-level text long enough as generated, too short as received (see ``_as_received``)."""
    match = _AT_LEAST.fullmatch(message)
    value = case.body.get(field) if isinstance(case.body, dict) else None
    return match is not None and isinstance(value, str) and len(_as_received(value)) < int(match.group(1))


def explained(failure: Failure, case: Case, response: Response) -> bool:
    """Whether ``failure`` is one of the API's documented departures from its schema."""
    if isinstance(failure, AcceptedNegativeData):
        return any(leniency.applies(case, response) for leniency in LENIENCIES)
    if isinstance(failure, RejectedPositiveData) and response.status_code in (400, 422):
        errors = list(_errors(response))
        refusals = RULES_BEYOND_THE_SCHEMA + SCHEMA_GAPS
        return bool(errors) and all(
            _too_short_as_received(case, field, message)
            or any(refusal.explains(code, field, message) for refusal in refusals)
            for code, field, message in errors
        )
    return False
