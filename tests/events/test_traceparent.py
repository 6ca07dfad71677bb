"""An event keeps the W3C ``traceparent`` of the request that caused it (tracing off: the header as it came),
and never a malformed one; a bad header never fails the request."""

import json

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from sapien.core.context import bind_context, clear_context
from sapien.entities.models import Person
from sapien.events.models import Event
from sapien.events.outbox import record_event

pytestmark = pytest.mark.django_db

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _tracing_off(settings):
    settings.ESL_OTEL_ENABLED = False


def test_a_created_person_s_event_keeps_the_request_s_traceparent(api: APIClient) -> None:
    response = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_TRACEPARENT=TRACEPARENT)

    assert response.status_code == 201
    (event,) = Event.objects.all()
    assert event.traceparent == TRACEPARENT
    assert "traceparent" not in json.loads(event.body)["metadata"]  # the envelope stays as its schema says


def test_every_event_of_the_request_keeps_it(api: APIClient) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    api.post("/api/pets", {"name": "Rex", "type": "dog", "owner": person["id"]}, format="json")

    api.delete(f"/api/persons/{person['id']}", HTTP_TRACEPARENT=TRACEPARENT)

    deletions = Event.objects.filter(type__endswith=".deleted")
    assert sorted(deletions.values_list("type", flat=True)) == ["person.deleted", "pet.deleted"]
    assert set(deletions.values_list("traceparent", flat=True)) == {TRACEPARENT}
    assert set(Event.objects.filter(type__endswith=".created").values_list("traceparent", flat=True)) == {None}


@pytest.mark.parametrize(
    "malformed",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        TRACEPARENT + "-more",
        TRACEPARENT[:-1],
        "x" * 8000,
        "",
    ],
)
def test_a_malformed_traceparent_is_ignored_and_the_request_succeeds(api: APIClient, malformed: str) -> None:
    response = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_TRACEPARENT=malformed)

    assert response.status_code == 201, response.content
    (event,) = Event.objects.all()
    assert event.traceparent is None
    assert Person.objects.get().name == "Ada"
    assert api.get("/api/persons", HTTP_TRACEPARENT=malformed).status_code == 200


def test_a_request_without_one_does_not_inherit_the_previous_request_s(api: APIClient) -> None:
    api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_TRACEPARENT=TRACEPARENT)

    api.post("/api/persons", {"name": "Grace"}, format="json")

    kept = {json.loads(body)["data"]["name"]: traceparent for body, traceparent in Event.objects.values_list(
        "body", "traceparent")}  # fmt: skip
    assert kept == {"Ada": TRACEPARENT, "Grace": None}


def test_an_event_recorded_outside_a_request_keeps_none(organization) -> None:
    bind_context(correlation_id="task_1", source="system")
    try:
        with transaction.atomic():
            event = record_event(organization_id=organization.id, event_type="system.ping", data={})
    finally:
        clear_context()

    assert event is not None
    assert Event.objects.get(pk=event.pk).traceparent is None
