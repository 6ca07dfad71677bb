"""The catalog's schemas are the truth about what is sent: every producer, driven through its real path, records
bodies that validate against their type's schema, closed to unnamed fields, with format checking on.

One scenario drives every producer (entities by the API, availability and presence by the API and the timers,
profiles and schedules, the quota notices by the relay, the maintenance and disabling notices, the ping), and
must cover every type of the catalog; the body forms a large event takes when sent are checked as well.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import transaction
from jsonschema import FormatChecker
from jsonschema.validators import validator_for
from oauth2_provider.models import AccessToken

from availability.models import Status, UserAvailability
from deliveries.models import BlobPart
from deliveries.payload import fit_to_limit
from deliveries.relay import relay_pending
from sapien.core.models import User
from sapien.entities.signals import TRACKED_FIELDS
from sapien.events.catalog import EVENT_TYPES
from sapien.events.envelope import OWN_SCHEMA_TYPES
from sapien.events.examples import example_body
from sapien.events.models import Event
from sapien.events.notices import maintenance_announce
from sapien.events.schemas import event_schema, strict
from sapien.events.schemas.data import CHANGED_FIELDS
from subscriptions.health import (
    failing_notice_threshold,
    subscription_health_recovered,
    subscriptions_failing_announce,
    subscriptions_probe_due,
)
from subscriptions.models import Subscription
from subscriptions.services import subscription_disable
from tests.availability.conftest import Clock

pytestmark = pytest.mark.django_db


def schema_errors(body: dict[str, Any]) -> list[str]:
    """What is wrong with ``body`` by its type's closed schema, formats checked."""
    event_type = str(body.get("type") or body.get("event_type"))
    schema = strict(event_schema(event_type))
    validator = validator_for(schema)(schema, format_checker=FormatChecker())
    return sorted(f"{event_type} {list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(body))


def recorded_bodies() -> list[dict[str, Any]]:
    return [json.loads(event.body) for event in Event.objects.order_by("created_at", "id")]


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2026, 6, 15, 9, 0, tzinfo=UTC), tick=False) as traveller:
        yield Clock(traveller)


def drive_the_entities(api) -> None:
    person = api.post(
        "/api/persons", {"name": "Ada", "email": "ada@example.com", "attributes": {"team": ["a", 1]}}, format="json"
    ).json()
    api.patch(
        f"/api/persons/{person['id']}",
        {"name": "Ada L.", "email": "", "status": "inactive", "notes": "Moved.", "attributes": {}},
        format="json",
    )
    pet = api.post("/api/pets", {"name": "Rex", "type": "dog", "owner": person["id"]}, format="json").json()
    api.patch(f"/api/pets/{pet['id']}", {"name": "Rexy", "type": "wolf", "owner": None}, format="json")
    toy = api.post("/api/toys", {"name": "Ball", "pet": pet["id"]}, format="json").json()
    api.patch(f"/api/toys/{toy['id']}", {"name": "Bone", "pet": None}, format="json")
    kept = api.post("/api/pets", {"name": "Tom", "type": "cat", "owner": person["id"]}, format="json").json()
    api.post("/api/toys", {"name": "Mouse", "pet": kept["id"]}, format="json")
    api.delete(f"/api/toys/{toy['id']}")
    api.delete(f"/api/pets/{pet['id']}")
    assert api.delete(f"/api/persons/{person['id']}").status_code == 204  # with Tom and his mouse


def drive_availability_and_presence(clock: Clock, user: User, make_api) -> None:
    admin = make_api(user.organization)
    me = make_api(user.organization, "availability:read availability:write", user=user)
    clock.advance(1)  # the sessions open: online, available
    later = (clock.now() + timedelta(hours=1)).isoformat()
    assert me.put(
        "/api/v1/availability/me", {"status": "busy", "custom_message": "Focus", "expires_at": later}, format="json"
    ).status_code == 200  # fmt: skip
    clock.advance(6)
    heartbeat = {"connection_id": "tab-1", "device_type": "web", "activity": "active", "location": "Paris"}
    assert me.post("/api/v1/presence/heartbeat", heartbeat, format="json").status_code in (200, 202, 204)
    override = f"/api/v1/users/{user.pk}/availability/override"
    assert (
        admin.post(override, {"status": "do_not_disturb", "custom_message": "Audit"}, format="json").status_code < 300
    )
    clock.advance(6)
    assert admin.delete(override).status_code < 300
    clock.advance(6)
    assert me.delete("/api/v1/availability/me").status_code < 300
    clock.advance(6)
    rule = {"days_of_week": [0, 1, 2, 3, 4, 5, 6], "start_time": "00:00", "end_time": "23:59", "status": "busy"}
    profile = me.post(
        "/api/v1/availability/profiles", {"name": "Always", "timezone": "Europe/Paris", "rules": [rule]}, format="json"
    ).json()
    clock.advance(6)  # the window applies
    me.patch(f"/api/v1/availability/profiles/{profile['id']}", {"name": "Always busy"}, format="json")
    me.delete(f"/api/v1/availability/profiles/{profile['id']}")
    clock.advance(6)  # the window is lifted
    me.post("/api/v1/presence/disconnect", {"connection_id": "tab-1"}, format="json")
    for token in AccessToken.objects.filter(user=user):
        token.revoke()  # the OAuth session ends
    clock.advance(10)  # past the offline debounce
    assert UserAvailability.objects.get(user_id=user.pk).status == Status.OFFLINE


def drive_the_system_notices(organization, api, settings) -> None:
    subscription = Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )
    assert api.post(f"/api/v1/subscriptions/{subscription.id}/test").status_code == 202
    settings.RATE_LIMIT_EVENTS_HOUR = 5  # crossed at once by what was recorded above: both notices
    relay_pending(batch_size=1000)
    now = datetime.now(tz=UTC)
    maintenance_announce(starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=1, hours=1), message="DB")
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=failing_notice_threshold(), failing_since=now, probe_when_disabled=True
    )
    with transaction.atomic():
        subscriptions_failing_announce(subscription_ids=[subscription.pk], now=now, reasons={subscription.pk: "503"})
    Subscription.objects.filter(pk=subscription.pk).update(consecutive_failures=0)
    subscription_health_recovered(subscription_ids=[subscription.pk], now=now)
    subscription.refresh_from_db()
    with transaction.atomic():
        subscription_disable(subscription=subscription, reason="Disabled after 50 failures.", now=now)
    subscriptions_probe_due(now=now + timedelta(days=1))  # a disabled subscription's probe: a ping with "probe"


def test_every_producer_records_bodies_its_schema_accepts_and_every_type_is_produced(
    clock, organization, make_api, settings
) -> None:
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    api = make_api(organization)

    drive_the_entities(api)
    drive_availability_and_presence(clock, user, make_api)
    drive_the_system_notices(organization, api, settings)

    bodies = recorded_bodies()
    assert [error for body in bodies for error in schema_errors(body)] == []
    produced = {event.type for event in Event.objects.all()}
    assert sorted(set(EVENT_TYPES) - produced) == []
    pings = [body["data"] for body in bodies if body.get("type") == "system.ping"]
    assert sorted(str(ping.get("probe")) for ping in pings) == ["1", "None"]  # the API's test, and a probe
    assert len(bodies) > len(EVENT_TYPES)


@pytest.mark.parametrize("event_type", [t for t in EVENT_TYPES if t not in OWN_SCHEMA_TYPES])
def test_every_form_a_large_body_is_sent_in_validates_too(event_type: str) -> None:
    """``deliveries.payload`` replaces ``data``, then ``changes``, then all but the ids by blob references."""
    body = example_body(event_type)
    body["data"] = {**body["data"], "padding": "x" * 4000}  # beyond any limit below; not a field of the schema
    recorded = json.dumps(body)
    blob = {"type": "blob", "uri": "https://sapien.example.com/api/v1/blobs/1?expires=1&signature=s",
            "expires_at": "2024-01-16T14:32:00.000Z", "size_bytes": 4096, "checksum": "sha256:" + "0" * 64}  # fmt: skip
    spilled: list[BlobPart] = []

    def spill(part: BlobPart, content: bytes) -> dict[str, Any]:
        spilled.append(part)
        return blob

    forms = {
        limit: json.loads(fit_to_limit(event_type, recorded, limit=limit, spill=spill)) for limit in (3000, 600, 300)
    }

    assert "data_ref" in forms[3000] and "data" not in forms[3000]
    assert "event_ref" in forms[300]
    assert [error for form in forms.values() for error in schema_errors(form)] == []


def test_the_schemas_name_the_fields_updates_report() -> None:
    tracked = {f"{model.__name__.lower()}.updated": sorted(fields) for model, fields in TRACKED_FIELDS.items()}
    assert tracked == {event_type: sorted(fields) for event_type, fields in CHANGED_FIELDS.items()}


@pytest.mark.parametrize(
    ("event_type", "change"),
    [
        ("person.created", lambda body: body["data"].update(nickname="Jo")),  # a field the schema does not name
        ("person.updated", lambda body: body.pop("changes")),  # an update without its changes
        ("pet.created", lambda body: body["data"].update(owner="not-a-uuid")),  # format checked
        ("availability.changed", lambda body: body["metadata"].update(source="cron")),  # not a source
        ("user.availability.update", lambda body: body["data"]["availability"].update(status="gone")),
        ("presence.user_offline", lambda body: body["data"].update(reason="crash")),
    ],
)
def test_a_body_that_drifts_from_its_schema_is_caught(event_type: str, change) -> None:
    body = example_body(event_type)
    change(body)
    assert schema_errors(body) != []
