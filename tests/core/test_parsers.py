"""JSON bodies the API cannot trust are a 400 ``malformed_request`` that changes nothing.

Nested deeper than 64 arrays or objects, or holding a lone surrogate (no UTF-8 can store or echo it),
on every write endpoint, with a token or without one.
"""

import json
import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from availability.services.profiles import profile_create
from deliveries.models import Delivery
from sapien.core.models import User
from sapien.entities.models import Person
from sapien.events.models import Event
from subscriptions.models import Subscription
from tests.support.database import all_rows

pytestmark = pytest.mark.django_db
DEEP = "[" * 10_000 + "]" * 10_000


def write_operations() -> list[tuple[str, str]]:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [
        (method, path)
        for path, operations in paths.items()
        for method in operations
        if method in {"post", "put", "patch"}
    ]


WRITE_OPERATIONS = write_operations()


@pytest.fixture
def world(organization, make_api) -> dict[str, Any]:
    """One of everything a write endpoint can name, and a user token holding every scope."""
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    api = make_api(organization, user=user)
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    pet = api.post("/api/pets", {"name": "Rex", "type": "dog", "owner": person["id"]}, format="json").json()
    toy = api.post("/api/toys", {"name": "Ball", "pet": pet["id"]}, format="json").json()
    subscription = Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="top-secret-value"
    )
    profile = profile_create(owner=user, name="Work", timezone="UTC", rules=[])
    event = Event.objects.filter(organization=organization).first()
    assert event is not None
    delivery = Delivery.objects.create(
        organization=organization, event=event, event_created_at=event.created_at, event_type=event.type,
        subscription=subscription, status="failed",
    )  # fmt: skip
    ids = {
        "/api/persons/": person["id"], "/api/pets/": pet["id"], "/api/toys/": toy["id"],
        "/api/v1/subscriptions/": str(subscription.id), "/api/v1/availability/profiles/": str(profile.id),
        "user_id": str(user.pk), "subscription_id": str(subscription.id), "delivery_id": str(delivery.id),
    }  # fmt: skip
    return {"api": api, "ids": ids}


def fill(path: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) == "id":
            return next(v for prefix, v in ids.items() if path.startswith(prefix))
        return ids[match.group(1)]

    return re.sub(r"\{(\w+)\}", value, path)


def send(client: APIClient, method: str, path: str, body: str) -> Any:
    return client.generic(method.upper(), path, body, content_type="application/json")


def test_every_write_endpoint_is_in_the_sweep() -> None:
    assert len(WRITE_OPERATIONS) >= 19


@pytest.mark.parametrize(("method", "path"), WRITE_OPERATIONS)
def test_json_nested_ten_thousand_deep_is_refused_on_every_write_endpoint(world, method: str, path: str) -> None:
    before = all_rows()

    response = send(world["api"], method, fill(path, world["ids"]), DEEP)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "malformed_request",
        "message": "The JSON body nests more than 64 arrays or objects.",
    }
    assert all_rows() == before


def test_json_nested_too_deep_is_refused_before_authentication(db) -> None:
    response = send(APIClient(), "post", "/api/persons", DEEP)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert Person.objects.count() == 0


def nested(levels: int) -> Any:
    """``levels`` objects, each inside the one before."""
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_sixty_four_levels_are_accepted(api: APIClient) -> None:
    body = {"name": "Ada", "attributes": nested(63)}  # the body itself is the first level

    response = send(api, "post", "/api/persons", json.dumps(body))

    assert response.status_code == 201
    assert Person.objects.get().attributes == nested(63)


def test_sixty_five_levels_are_refused(api: APIClient) -> None:
    body = {"name": "Ada", "attributes": nested(64)}

    response = send(api, "post", "/api/persons", json.dumps(body))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert Person.objects.count() == 0
    assert Event.objects.count() == 0


LONE = "\ud800"
RULE = {"days_of_week": [1], "start_time": "09:00", "end_time": "17:00", "status": "busy"}
SURROGATE_BODIES = [
    ("post", "/api/persons", {"name": "Ada", "status": LONE}),
    ("post", "/api/persons", {"name": LONE}),
    ("post", "/api/persons", {"name": "Ada", "attributes": {LONE: 1}}),
    ("post", "/api/pets", {"name": "Rex", "type": "dog", "owner": LONE}),
    ("post", "/api/toys", {"name": "Ball", "pet": LONE}),
    ("put", "/api/v1/availability/me", {"status": LONE}),
    ("post", "/api/v1/users/{user_id}/availability/override", {"status": LONE}),
    ("post", "/api/v1/subscriptions/{subscription_id}/replay", {"since": "2026-01-01T00:00:00Z", "status": LONE}),
    ("post", "/api/v1/presence/heartbeat", {"connection_id": "tab-1", "device_type": LONE, "activity": "active"}),
    ("post", "/api/v1/presence/heartbeat", {"connection_id": "tab-1", "device_type": "web", "activity": LONE}),
    ("post", "/api/v1/availability/profiles", {"name": "Home", "timezone": "UTC", "rules": [{**RULE, "status": LONE}]}),
    ("patch", "/api/v1/availability/profiles/{id}", {"rules": [{**RULE, "status": LONE}]}),
]


@pytest.mark.parametrize(("method", "path", "body"), SURROGATE_BODIES)
def test_a_lone_surrogate_in_a_json_body_is_refused(world, method: str, path: str, body: dict[str, Any]) -> None:
    before = all_rows()

    response = send(world["api"], method, fill(path, world["ids"]), json.dumps(body))

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "malformed_request",
        "message": "The JSON body has a lone surrogate escape (such as \\ud800): strings must be Unicode.",
    }
    assert all_rows() == before


def test_a_surrogate_pair_is_one_character_and_is_accepted(api: APIClient) -> None:
    response = send(api, "post", "/api/persons", '{"name": "\\ud83d\\ude00"}')

    assert response.status_code == 201
    assert Person.objects.get().name == "😀"


def test_a_body_that_is_not_utf8_is_refused(api: APIClient) -> None:
    response = api.post("/api/persons", b'{"name": "\xed\xa0\x80"}', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "malformed_request", "message": "The body is not valid utf-8 text."}
    assert Person.objects.count() == 0


def test_an_integer_beyond_64_bits_is_kept_exact(api: APIClient) -> None:
    body = '{"name": "Ada", "attributes": {"big": 123456789012345678901234567890, "small": -9223372036854775809}}'

    response = send(api, "post", "/api/persons", body)

    assert response.status_code == 201
    assert Person.objects.get().attributes == {"big": 123456789012345678901234567890, "small": -9223372036854775809}
    assert b'"big":123456789012345678901234567890' in response.content


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "Ada"', "JSON parse error - Expecting ',' delimiter: line 1 column 15 (char 14)"),
        ('{"name": NaN}', "JSON parse error - NaN is not a JSON number."),
        (
            '\ufeff{"name": "Ada"}',
            "JSON parse error - Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)",
        ),
    ],
)
def test_a_body_that_is_not_json_is_refused_in_the_same_words_as_always(
    api: APIClient, body: str, message: str
) -> None:
    response = send(api, "post", "/api/persons", body)

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "malformed_request", "message": message}
    assert Person.objects.count() == 0


def test_a_body_in_another_charset_is_read_in_it(api: APIClient) -> None:
    response = api.post(
        "/api/persons", '{"name": "Zoë"}'.encode("latin-1"), content_type="application/json; charset=latin-1"
    )

    assert response.status_code == 201
    assert Person.objects.get().name == "Zoë"
