"""The transactional outbox: an event exists if and only if its change committed."""

import json

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from sapien.core.context import bind_context, clear_context
from sapien.entities.models import Person
from sapien.events.models import Event
from tests.support.prepared import prepared_statements

pytestmark = pytest.mark.django_db


def only_event() -> dict:
    (event,) = Event.objects.all()
    return json.loads(event.body)


def test_creating_a_person_records_the_envelope_of_seed_001(api: APIClient, organization) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_X_REQUEST_ID="req-42").json()

    body = only_event()
    assert list(body) == ["id", "type", "version", "timestamp", "organization_id", "data", "metadata"]
    assert body["type"] == "person.created"
    assert body["version"] == "1.0"
    assert body["organization_id"] == str(organization.id)
    assert body["data"] == person
    assert body["timestamp"].endswith("Z") and len(body["timestamp"]) == 24
    assert body["metadata"]["correlation_id"] == "req-42"
    assert body["metadata"]["source"] == "api"
    assert body["metadata"]["triggered_by"]


def test_an_update_carries_only_the_changed_fields(api: APIClient) -> None:
    person = api.post("/api/persons", {"name": "John Smith", "email": "j@example.com"}, format="json").json()
    Event.objects.all().delete()

    api.patch(f"/api/persons/{person['id']}", {"name": "John Doe", "email": "j@example.com"}, format="json")

    body = only_event()
    assert body["type"] == "person.updated"
    assert body["changes"] == {"name": {"old": "John Smith", "new": "John Doe"}}
    assert body["data"]["name"] == "John Doe"


def test_a_save_that_changes_nothing_records_nothing(api: APIClient) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    Event.objects.all().delete()

    api.patch(f"/api/persons/{person['id']}", {"name": "Ada"}, format="json")

    assert Event.objects.count() == 0


def test_a_generated_correlation_id_is_echoed_in_the_response(api: APIClient) -> None:
    response = api.post("/api/persons", {"name": "Ada"}, format="json")

    assert only_event()["metadata"]["correlation_id"] == response["X-Request-ID"]


def test_deleting_a_person_records_their_pets_deletions_and_their_own_with_pets(api: APIClient) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    api.post("/api/pets", {"name": "Buddy", "type": "dog", "owner": person["id"]}, format="json")
    Event.objects.all().delete()

    api.delete(f"/api/persons/{person['id']}")

    bodies = {event.type: json.loads(event.body) for event in Event.objects.all()}
    assert set(bodies) == {"pet.deleted", "person.deleted"}
    assert bodies["person.deleted"]["data"]["pets"][0]["name"] == "Buddy"


def test_a_rolled_back_change_leaves_no_event(organization) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Person.objects.create(organization=organization, name="Ghost")
        assert Event.objects.count() == 1  # recorded inside the transaction…
        raise RuntimeError("the change fails after the event was written")

    assert Person.objects.count() == 0
    assert Event.objects.count() == 0  # …and gone with it


def test_a_failing_api_write_leaves_no_event(api: APIClient, monkeypatch) -> None:
    from sapien.entities import signals

    def explode(*args, **kwargs):
        raise RuntimeError("boom after the outbox insert")

    original = signals.record_entity_event

    def record_then_fail(*args, **kwargs):
        original(*args, **kwargs)
        explode()

    monkeypatch.setattr(signals, "record_entity_event", record_then_fail)
    api.raise_request_exception = False

    response = api.post("/api/persons", {"name": "Ada"}, format="json")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert Person.objects.count() == 0
    assert Event.objects.count() == 0


def test_shell_changes_are_recorded_with_source_system(organization) -> None:
    clear_context()

    Person.objects.create(organization=organization, name="From the shell")

    assert only_event()["metadata"]["source"] == "system"


def test_admin_changes_name_the_operator(admin_client, organization, admin_user) -> None:
    response = admin_client.post(
        "/admin/entities/person/add/",
        {"organization": organization.id, "name": "Via admin", "status": "active", "attributes": "{}"},
    )

    assert response.status_code == 302
    metadata = only_event()["metadata"]
    assert metadata["source"] == "admin"
    assert metadata["triggered_by"] == str(admin_user.pk)


def test_nothing_is_recorded_when_esl_is_disabled(api: APIClient, settings) -> None:
    settings.ESL_ENABLED = False

    api.post("/api/persons", {"name": "Ada"}, format="json")

    assert Person.objects.count() == 1
    assert Event.objects.count() == 0


def test_pet_and_toy_events(api: APIClient) -> None:
    pet = api.post("/api/pets", {"name": "Rex", "type": "dog"}, format="json").json()
    toy = api.post("/api/toys", {"name": "Ball", "pet": pet["id"]}, format="json").json()
    api.patch(f"/api/toys/{toy['id']}", {"name": "Bone"}, format="json")
    api.delete(f"/api/toys/{toy['id']}")

    types = list(Event.objects.order_by("created_at").values_list("type", flat=True))
    assert types == ["pet.created", "toy.created", "toy.updated", "toy.deleted"]


def test_bound_context_is_used_for_metadata(organization) -> None:
    bind_context(correlation_id="job-7", triggered_by="scheduler", source="schedule")
    try:
        Person.objects.create(organization=organization, name="Scheduled")
    finally:
        clear_context()

    assert only_event()["metadata"] == {"correlation_id": "job-7", "triggered_by": "scheduler", "source": "schedule"}


def test_the_event_and_its_outbox_entry_are_written_by_one_statement_prepared_once_per_connection(
    api: APIClient,
) -> None:
    for n in range(7):
        assert api.post("/api/persons", {"name": f"Ada {n}"}, format="json").status_code == 201

    assert Event.objects.count() == 7
    assert len(prepared_statements("INSERT INTO events_event")) == 1  # planned once (generically), not per event
