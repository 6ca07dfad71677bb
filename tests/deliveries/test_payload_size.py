"""No delivered body is larger than ``ESL_MAX_PAYLOAD_SIZE``: whatever would make it larger is spilled to a blob.

Each event is sent by the dispatcher's own batch path to a loopback receiver; the body it received is
measured, its signatures checked, and every ref's blob fetched through its signed URL. Entities of
realistic size (300 KB of notes) meet the default limit; where an event family is small by nature, the
limit is lowered instead (below the floor the settings enforce at start, which tests may do).
"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from jsonschema import Draft7Validator, FormatChecker
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from availability.events import user_availability_update
from availability.models import UserAvailability
from deliveries import transport
from deliveries.claims import ClaimedSubscription
from deliveries.models import Blob, DeliveryStatus
from deliveries.payload import MIN_PAYLOAD_SIZE
from sapien.core.context import current_context, overriding
from sapien.core.models import Organization, User
from sapien.entities.models import Pet, Toy
from sapien.events.envelope import build_envelope, isoformat_z, to_json
from sapien.events.models import Event
from sapien.events.outbox import record_event, record_prebuilt_event
from tests.support.claimed import claimed_delivery, claimed_event, send_claimed
from tests.support.receiver import ReceivedRequest, Receiver

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-subscriber-secret-of-some-length"
LIMIT = 262144
NOTES = "a" * 300_000
OTHER_NOTES = "b" * 300_000
HEADLINE = ["id", "type", "version", "timestamp", "organization_id"]
REF_FIELDS = ["type", "uri", "expires_at", "size_bytes", "checksum"]
SEED_000 = Draft7Validator(
    json.loads((ROOT / "docs/schemas/user-availability-update.schema.json").read_text()), format_checker=FormatChecker()
)


@pytest.fixture(autouse=True)
def blob_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def receiver(e2e_settings):
    transport._connections.reset()  # the connections are made for the private-callbacks setting
    receiver = Receiver()
    yield receiver
    receiver.close()
    transport._connections.reset()


def only_event(event_type: str) -> Event:
    (event,) = Event.objects.filter(type=event_type)
    return event


def send(receiver: Receiver, event: Event) -> ReceivedRequest:
    """Sends ``event`` as a worker does (``tests.support.claimed.send_claimed``) and returns what the receiver got."""
    subscription = ClaimedSubscription(id=uuid.uuid4(), callback_url=receiver.url, secret=SECRET, active=True)
    claimed = claimed_delivery(claimed_event(event), subscription)
    before = len(receiver.requests)

    (outcome,) = send_claimed([claimed])

    assert outcome.status == DeliveryStatus.SUCCEEDED
    return receiver.wait_for(before + 1)[before]


def received(receiver: Receiver, event: Event, *, limit: int = LIMIT) -> dict[str, Any]:
    """The body the receiver got, once checked: within ``limit`` and signed both ways over these very bytes."""
    request = send(receiver, event)
    assert len(request.body) <= limit
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
    verified = Webhook(SECRET.encode()).verify(request.body, request.headers)
    assert verified["id"] == str(event.id)
    body: dict[str, Any] = json.loads(request.body)
    return body


def fetched(reference: dict[str, Any], event: Event) -> bytes:
    """The bytes behind a ref, fetched through its signed URL with no token; size and checksum must match."""
    assert list(reference) == REF_FIELDS
    assert reference["type"] == "blob"
    assert reference["expires_at"] == isoformat_z(event.created_at + timedelta(hours=24))
    uri = urlsplit(reference["uri"])
    blob = Blob.objects.get(event=event, pk=uri.path.removeprefix("/api/v1/blobs/"))
    assert uri.query.startswith(f"expires={int(blob.expires_at.timestamp())}&signature=")

    response = Client().get(f"{uri.path}?{uri.query}")

    assert response.status_code == 200
    content: bytes = response.content
    assert reference["size_bytes"] == len(content) == blob.size_bytes
    assert reference["checksum"] == f"sha256:{hashlib.sha256(content).hexdigest()}" == response["X-Checksum"]
    return content


def assert_spilled(reference: dict[str, Any], event: Event, part: str) -> None:
    """The ref's blob holds exactly the JSON of the recorded event's ``part``."""
    assert fetched(reference, event) == to_json(event.payload[part]).encode("utf-8")


def blob_parts(event: Event) -> list[str]:
    return sorted(Blob.objects.filter(event=event).values_list("part", flat=True))


def make_person(api: APIClient, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/persons", {"name": "Big", **fields}, format="json")
    assert response.status_code == 201, response.content
    person: dict[str, Any] = response.json()
    return person


# --- persons: 300 KB of notes against the default limit ----------------------------------


def test_a_person_updated_from_and_to_300_kb_notes_is_sent_with_data_and_changes_spilled(
    api: APIClient, receiver: Receiver
) -> None:
    person = make_person(api, notes=NOTES)

    answer = api.patch(f"/api/persons/{person['id']}", {"notes": OTHER_NOTES}, format="json")

    assert answer.status_code == 200
    event = only_event("person.updated")
    assert len(event.body.encode()) > 2 * 300_000
    body = received(receiver, event)
    assert list(body) == [*HEADLINE, "data_ref", "changes_ref", "metadata"]
    assert body["metadata"] == event.payload["metadata"]
    assert json.loads(fetched(body["data_ref"], event)) == api.get(f"/api/persons/{person['id']}").json()
    assert json.loads(fetched(body["changes_ref"], event)) == {"notes": {"old": NOTES, "new": OTHER_NOTES}}
    assert_spilled(body["data_ref"], event, "data")
    assert_spilled(body["changes_ref"], event, "changes")
    assert blob_parts(event) == ["changes", "data"]


def test_a_person_created_with_300_kb_notes_is_sent_with_data_ref(api: APIClient, receiver: Receiver) -> None:
    person = make_person(api, notes=NOTES)

    body = received(receiver, only_event("person.created"))

    assert list(body) == [*HEADLINE, "data_ref", "metadata"]
    assert json.loads(fetched(body["data_ref"], only_event("person.created"))) == person
    assert blob_parts(only_event("person.created")) == ["data"]


def test_a_person_deleted_with_300_kb_notes_is_sent_with_data_ref(api: APIClient, receiver: Receiver) -> None:
    person = make_person(api, notes=NOTES)

    assert api.delete(f"/api/persons/{person['id']}").status_code == 204

    event = only_event("person.deleted")
    body = received(receiver, event)
    assert list(body) == [*HEADLINE, "data_ref", "metadata"]
    assert json.loads(fetched(body["data_ref"], event)) == person
    assert blob_parts(event) == ["data"]


def test_changes_that_fit_once_data_is_spilled_stay_inline(api: APIClient, receiver: Receiver) -> None:
    person = make_person(api, notes=NOTES)

    api.patch(f"/api/persons/{person['id']}", {"name": "Bigger"}, format="json")

    event = only_event("person.updated")
    body = received(receiver, event)
    assert list(body) == [*HEADLINE, "data_ref", "changes", "metadata"]
    assert body["changes"] == {"name": {"old": "Big", "new": "Bigger"}}
    assert json.loads(fetched(body["data_ref"], event))["notes"] == NOTES
    assert blob_parts(event) == ["data"]


def test_large_changes_of_a_now_small_person_are_spilled_too(api: APIClient, receiver: Receiver) -> None:
    person = make_person(api, attributes={"history": NOTES})

    api.patch(f"/api/persons/{person['id']}", {"attributes": {}}, format="json")

    event = only_event("person.updated")
    body = received(receiver, event)
    assert list(body) == [*HEADLINE, "data_ref", "changes_ref", "metadata"]
    assert json.loads(fetched(body["data_ref"], event))["attributes"] == {}
    assert json.loads(fetched(body["changes_ref"], event)) == {"attributes": {"old": {"history": NOTES}, "new": {}}}


# --- pets: large only through their toys -------------------------------------------------


def test_a_pet_with_many_toys_is_sent_with_data_ref_when_updated_and_deleted(
    api: APIClient, receiver: Receiver, organization: Organization, settings
) -> None:
    settings.ESL_MAX_PAYLOAD_SIZE = MIN_PAYLOAD_SIZE
    pet = api.post("/api/pets", {"name": "Rex", "type": "dog"}, format="json").json()
    for number in range(100):
        Toy.objects.create(organization=organization, pet_id=pet["id"], name=f"{number:03d}" + "t" * 197)

    api.patch(f"/api/pets/{pet['id']}", {"name": "Max"}, format="json")
    api.delete(f"/api/pets/{pet['id']}")

    updated, deleted = only_event("pet.updated"), only_event("pet.deleted")
    updated_body = received(receiver, updated, limit=MIN_PAYLOAD_SIZE)
    assert list(updated_body) == [*HEADLINE, "data_ref", "changes", "metadata"]
    assert updated_body["changes"] == {"name": {"old": "Rex", "new": "Max"}}
    assert len(json.loads(fetched(updated_body["data_ref"], updated))["toys"]) == 100
    deleted_body = received(receiver, deleted, limit=MIN_PAYLOAD_SIZE)
    assert list(deleted_body) == [*HEADLINE, "data_ref", "metadata"]
    assert_spilled(deleted_body["data_ref"], deleted, "data")
    assert not Pet.objects.exists()


# --- availability profiles: at most 50 rules, so small; spilled all the same past a lower limit ------


def make_profile_api(make_api, organization: Organization) -> tuple[APIClient, User]:
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    return make_api(organization), user


LARGEST_RULES = [
    {"days_of_week": [0, 1, 2, 3, 4, 5, 6], "start_time": "00:00", "end_time": "23:59", "status": "do_not_disturb"}
] * 50


def test_the_largest_profile_the_api_accepts_is_under_8_kb_and_sent_inline_at_the_floor(
    make_api, organization: Organization, receiver: Receiver, settings
) -> None:
    settings.ESL_MAX_PAYLOAD_SIZE = MIN_PAYLOAD_SIZE
    api, user = make_profile_api(make_api, organization)

    answer = api.post(
        "/api/v1/availability/profiles",
        {"user_id": str(user.pk), "name": "\x01" * 200, "timezone": "America/Argentina/ComodRivadavia",
         "rules": LARGEST_RULES},
        format="json",
    )  # fmt: skip

    assert answer.status_code == 201, answer.content
    event = only_event("availability.profile.created")
    request = send(receiver, event)
    assert request.body == event.body.encode("utf-8")
    assert len(request.body) < 8 * 1024
    assert len(json.loads(request.body)["data"]["rules"]) == 50
    assert Blob.objects.count() == 0


def test_profile_events_past_a_lower_limit_are_sent_with_data_ref(
    make_api, organization: Organization, receiver: Receiver, settings
) -> None:
    settings.ESL_MAX_PAYLOAD_SIZE = 4096
    api, user = make_profile_api(make_api, organization)
    profile = api.post(
        "/api/v1/availability/profiles",
        {"user_id": str(user.pk), "name": "Week", "timezone": "UTC", "rules": LARGEST_RULES},
        format="json",
    ).json()

    api.patch(f"/api/v1/availability/profiles/{profile['id']}", {"name": "Weekdays"}, format="json")
    api.delete(f"/api/v1/availability/profiles/{profile['id']}")

    for action in ("created", "updated", "deleted"):
        event = only_event(f"availability.profile.{action}")
        body = received(receiver, event, limit=4096)
        assert list(body) == [*HEADLINE, "data_ref", "metadata"]
        assert json.loads(fetched(body["data_ref"], event))["rules"] == LARGEST_RULES


# --- the last resort: the whole event in a blob ------------------------------------------


def test_a_large_field_outside_data_and_changes_spills_the_whole_event(
    organization: Organization, receiver: Receiver
) -> None:
    event_id = uuid.uuid4()
    envelope = build_envelope(
        event_id=event_id, event_type="person.updated", organization_id=organization.id,
        occurred_at=timezone.now(), data={"name": "Ada"}, changes={"name": {"old": "A", "new": "Ada"}},
        context=current_context(),
    )  # fmt: skip
    envelope["attachments"] = ["x" * 1000] * 300
    event = record_prebuilt_event(
        event_id=event_id, organization_id=organization.id, event_type="person.updated", body=envelope
    )
    assert event is not None

    body = received(receiver, event)

    assert list(body) == [*HEADLINE, "data_ref", "changes_ref", "event_ref", "metadata"]
    assert [body[key] for key in HEADLINE] == [envelope[key] for key in HEADLINE]
    assert body["metadata"] == envelope["metadata"]
    assert fetched(body["event_ref"], event) == event.body.encode("utf-8")
    assert json.loads(fetched(body["data_ref"], event)) == {"name": "Ada"}
    assert json.loads(fetched(body["changes_ref"], event)) == {"name": {"old": "A", "new": "Ada"}}
    assert blob_parts(event) == ["changes", "data", "event"]


def test_metadata_too_large_for_the_small_envelope_is_left_to_the_event_blob(
    organization: Organization, receiver: Receiver
) -> None:
    with overriding(triggered_by="u" * 300_000, source="api"):
        event = record_event(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
    assert event is not None

    body = received(receiver, event)

    assert list(body) == [*HEADLINE, "data_ref", "event_ref"]
    assert json.loads(fetched(body["event_ref"], event))["metadata"]["triggered_by"] == "u" * 300_000


# --- the boundary, retries, and the bounded seed 000 event --------------------------------


def test_a_body_of_exactly_the_limit_is_sent_inline_and_one_byte_more_is_spilled(
    organization: Organization, receiver: Receiver, settings
) -> None:
    event = record_event(organization_id=organization.id, event_type="person.created", data={"notes": "é" * 9000})
    assert event is not None
    size = len(event.body.encode("utf-8"))

    settings.ESL_MAX_PAYLOAD_SIZE = size
    inline = send(receiver, event)
    settings.ESL_MAX_PAYLOAD_SIZE = size - 1
    spilled = json.loads(send(receiver, event).body)

    assert inline.body == event.body.encode("utf-8")
    assert list(spilled) == [*HEADLINE, "data_ref", "metadata"]
    assert_spilled(spilled["data_ref"], event, "data")


def test_every_attempt_sends_the_same_refs_to_blobs_written_once(api: APIClient, receiver: Receiver) -> None:
    person = make_person(api, notes=NOTES)
    api.patch(f"/api/persons/{person['id']}", {"notes": OTHER_NOTES}, format="json")
    event = only_event("person.updated")

    first, second = send(receiver, event), send(receiver, event)

    assert first.body == second.body
    assert Blob.objects.filter(event=event).count() == 2


def test_the_largest_user_availability_update_is_under_8_kb_and_sent_as_is(
    organization: Organization, receiver: Receiver, settings
) -> None:
    settings.ESL_MAX_PAYLOAD_SIZE = MIN_PAYLOAD_SIZE
    now = timezone.now()
    worst = "\x01"  # six bytes once escaped in JSON, the most any character takes
    state = UserAvailability(
        user_id=uuid.uuid4(), organization_id=organization.id, status="do_not_disturb", emitted_status="available",
        changed_at=now, expires_at=now + timedelta(days=1), custom_message=worst * 256, trigger="system_override",
        trigger_source=worst * 64, actor_id=str(uuid.uuid4()),
        event_context={"session_id": str(uuid.uuid4()), "device_type": "desktop", "ip_address": "255.255.255.255",
                       "user_agent": worst * 5000},
    )  # fmt: skip
    event_id = uuid.uuid4()
    event = record_prebuilt_event(
        event_id=event_id, organization_id=organization.id, event_type="user.availability.update",
        body=user_availability_update(state, event_id=event_id, now=now),
    )  # fmt: skip
    assert event is not None

    request = send(receiver, event)

    assert request.body == event.body.encode("utf-8")
    assert len(request.body) < 8 * 1024
    assert sorted(str(error) for error in SEED_000.iter_errors(json.loads(request.body))) == []
    assert Blob.objects.count() == 0


def test_a_limit_below_the_floor_is_refused_at_start() -> None:
    def start(limit: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sapien.settings", "ESL_MAX_PAYLOAD_SIZE": str(limit)}
        command = [sys.executable, "-c", "import django; django.setup()"]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    refused, accepted = start(MIN_PAYLOAD_SIZE - 1), start(MIN_PAYLOAD_SIZE)

    assert refused.returncode == 1
    assert "ImproperlyConfigured: ESL_MAX_PAYLOAD_SIZE is 16383; it must be at least 16384 bytes." in refused.stderr
    assert accepted.returncode == 0, accepted.stderr
