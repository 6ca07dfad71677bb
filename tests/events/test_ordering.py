"""Ordering keys: the user of availability and presence events, the entity of entity events, none for system ones;
recorded with the event by its producers, and the same in SQL (for a replay) as in Python."""

import json
import uuid

import pytest
from django.db import connection, transaction

from availability.events import record_availability_events
from availability.models import UserAvailability
from sapien.core.models import User
from sapien.events.catalog import EVENT_TYPES
from sapien.events.models import OutboxEntry
from sapien.events.ordering import KEY_FIELDS, ordering_key, ordering_key_sql

USER_SCOPES = "availability:read availability:write"
SOMEONE = str(uuid.uuid4())


def data_of(event_type: str) -> dict:
    """A ``data`` carrying every field a key may be read from."""
    return {"id": SOMEONE, "user_id": SOMEONE, "userId": SOMEONE, "name": "x"}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_type_has_the_key_its_family_promises(event_type: str) -> None:
    family = event_type.split(".")[0]
    expected = {
        "person": f"person:{SOMEONE}", "pet": f"pet:{SOMEONE}", "toy": f"toy:{SOMEONE}",
        "availability": f"user:{SOMEONE}", "user": f"user:{SOMEONE}", "presence": f"user:{SOMEONE}",
        "system": None,
    }[family]  # fmt: skip

    assert ordering_key(event_type, data_of(event_type)) == expected


@pytest.mark.parametrize("data", [{}, {"id": ""}, {"user_id": None}, None, ["user_id"]])
def test_data_without_the_id_gives_no_key(data) -> None:
    assert ordering_key("person.updated", data) is None
    assert ordering_key("availability.changed", data) is None


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@pytest.mark.parametrize("data", [data_of(""), {}, {"id": "", "user_id": "", "userId": ""}])
def test_the_sql_rule_gives_the_python_rules_key(event_type: str, data: dict) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {ordering_key_sql('%(type)s::text', '%(body)s::text')}",
            {"type": event_type, "body": json.dumps({"id": "envelope", "data": data})},
        )
        (in_sql,) = cursor.fetchone()

    assert in_sql == ordering_key(event_type, data)


def test_every_family_with_a_key_is_a_family_of_the_catalog() -> None:
    assert set(KEY_FIELDS) <= {event_type.split(".")[0] for event_type in EVENT_TYPES}


@pytest.mark.django_db
def test_producers_record_the_entity_as_the_key_of_entity_events(api) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    api.patch(f"/api/persons/{person['id']}", {"name": "Ada L."}, format="json")
    pet = api.post("/api/pets", {"name": "Rex", "type": "dog"}, format="json").json()

    keys = set(OutboxEntry.objects.values_list("type", "ordering_key"))

    assert keys == {
        ("person.created", f"person:{person['id']}"),
        ("person.updated", f"person:{person['id']}"),
        ("pet.created", f"pet:{pet['id']}"),
    }


@pytest.mark.django_db
def test_producers_record_the_user_as_the_key_of_availability_and_presence_events(organization, make_api) -> None:
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    me = make_api(organization, USER_SCOPES, user=user)

    assert me.put("/api/v1/availability/me", {"status": "busy"}, format="json").status_code == 200
    heartbeat = {"connection_id": "tab-1", "device_type": "web", "activity": "active"}
    assert me.post("/api/v1/presence/heartbeat", heartbeat, format="json").status_code in (200, 202, 204)
    profile = {"name": "Work", "timezone": "UTC",
               "rules": [{"days_of_week": [1], "start_time": "09:00", "end_time": "17:00", "status": "busy"}]}  # fmt: skip
    assert me.post("/api/v1/availability/profiles", profile, format="json").status_code == 201

    entries = list(OutboxEntry.objects.values_list("type", "ordering_key"))
    types = {event_type for event_type, _ in entries}
    assert {"availability.profile.created", "presence.user_online"} <= types
    assert {key for _, key in entries} == {f"user:{user.id}"}


@pytest.mark.django_db
def test_both_availability_events_of_a_change_have_the_users_key(organization, make_api) -> None:
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    make_api(organization, USER_SCOPES, user=user).put("/api/v1/availability/me", {"status": "busy"}, format="json")
    OutboxEntry.objects.all().delete()

    with transaction.atomic():  # as the timer that sends the spaced availability events does
        record_availability_events(UserAvailability.objects.get(user=user))

    assert set(OutboxEntry.objects.values_list("type", "ordering_key")) == {
        ("user.availability.update", f"user:{user.id}"),
        ("availability.changed", f"user:{user.id}"),
    }


@pytest.mark.django_db
def test_system_events_have_no_key(api) -> None:
    subscription = api.post(
        "/api/v1/subscriptions", {"callback_url": "https://93.184.215.14/x", "events": ["*"]}, format="json"
    ).json()

    api.post(f"/api/v1/subscriptions/{subscription['id']}/test")

    assert list(OutboxEntry.objects.values_list("type", "ordering_key")) == [("system.ping", None)]
