"""POST /api/v1/subscriptions/{id}/test {"type": …}: that type's catalog example, recorded as a real event
addressed to the subscription alone; ``system.ping`` when no type is given."""

import json
import uuid

import pytest
from jsonschema import FormatChecker
from jsonschema.validators import validator_for

from deliveries.models import Delivery
from deliveries.relay import relay_pending
from sapien.events.catalog import EVENT_TYPES
from sapien.events.examples import USER_ID, example_body
from sapien.events.models import Event, OutboxEntry
from sapien.events.schemas import event_schema, strict
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["person.*"], secret="s" * 20
    )


def send(api, subscription, body=None, **kwargs):
    return api.post(f"/api/v1/subscriptions/{subscription.id}/test", body, **kwargs)


def test_without_a_body_it_is_the_ping_as_before(api, subscription) -> None:
    response = send(api, subscription)

    assert response.status_code == 202
    (event,) = Event.objects.all()
    assert response.json() == {"event_id": str(event.id), "type": "system.ping"}
    assert event.recipient_id == subscription.id
    assert json.loads(event.body)["data"] == {
        "subscription_id": str(subscription.id),
        "message": "Ping from Sapien ESL.",
    }
    assert json.loads(event.body)["metadata"]["source"] == "api"


def test_an_empty_object_is_the_ping_too(api, subscription) -> None:
    response = send(api, subscription, {}, format="json")

    assert response.status_code == 202
    assert response.json()["type"] == "system.ping"


@pytest.mark.parametrize("event_type", [t for t in EVENT_TYPES if t != "system.ping"])
def test_each_types_example_is_recorded_fresh_for_the_subscription_alone(api, organization, subscription, event_type):
    response = send(api, subscription, {"type": event_type}, format="json")

    assert response.status_code == 202
    (event,) = Event.objects.all()
    assert response.json() == {"event_id": str(event.id), "type": event_type}
    assert (event.type, event.recipient_id, event.organization_id) == (event_type, subscription.id, organization.id)
    assert OutboxEntry.objects.filter(event_id=event.id, recipient_id=subscription.id).count() == 1
    body = json.loads(event.body)
    schema = strict(event_schema(event_type))
    assert list(validator_for(schema)(schema, format_checker=FormatChecker()).iter_errors(body)) == []
    example = example_body(event_type)
    if event_type == "user.availability.update":
        assert body["event_id"] == str(event.id) != example["event_id"]
        assert body["data"]["organization_id"] == str(organization.id)
        assert body["data"]["trigger"] == {**example["data"]["trigger"], "source": "example"}
        assert body["data"]["availability"] == example["data"]["availability"]
    else:
        assert body["id"] == str(event.id) != example["id"]
        assert body["organization_id"] == str(organization.id)
        assert body["timestamp"] != example["timestamp"]
        assert body["data"] == example["data"]
        assert body.get("changes") == example.get("changes")
        assert body["metadata"]["source"] == "system"
        assert body["metadata"]["triggered_by"] != USER_ID  # the caller, not the example's actor


def test_two_sends_of_one_type_are_two_events(api, subscription) -> None:
    first = send(api, subscription, {"type": "pet.created"}, format="json").json()
    second = send(api, subscription, {"type": "pet.created"}, format="json").json()

    assert first["event_id"] != second["event_id"]
    assert Event.objects.count() == 2


def test_the_example_reaches_no_other_subscription_even_a_matching_one(api, organization, subscription) -> None:
    matching = Subscription.objects.create(
        organization=organization, callback_url="https://other.example.com/", events=["*"], secret="o" * 20
    )

    send(api, subscription, {"type": "person.created"}, format="json")
    relay_pending(batch_size=100)

    assert list(Delivery.objects.values_list("subscription_id", flat=True)) == [subscription.id]
    assert not Delivery.objects.filter(subscription=matching).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "person.renamed"}, "type"),
        ({"type": "person.*"}, "type"),
        ({"type": "*"}, "type"),
        ({"type": ""}, "type"),
        ({"type": None}, "type"),
        ({"type": ["person.created"]}, "type"),
        ({"type": 7}, "type"),
        ([{"type": "person.created"}], "non_field_errors"),
        ("person.created", "non_field_errors"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_records_nothing(api, subscription, body, field) -> None:
    response = send(api, subscription, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert not Event.objects.exists()


def test_an_unknown_type_is_named_with_where_to_find_the_known_ones(api, subscription) -> None:
    error = send(api, subscription, {"type": "person.renamed"}, format="json").json()["error"]

    assert error["details"]["type"] == ['Unknown event type "person.renamed": GET /api/v1/event-types lists them.']


def test_malformed_json_is_a_400_and_records_nothing(api, subscription) -> None:
    response = send(api, subscription, b'{"type": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert not Event.objects.exists()


def test_another_organizations_subscription_is_a_404_whatever_the_body(make_api, make_organization, subscription):
    stranger = make_api(make_organization("Globex"))

    for body in ({"type": "person.created"}, {"type": "nope"}, None):
        response = send(stranger, subscription, body, format="json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert send(stranger, Subscription(id=uuid.uuid4()), {"type": "person.created"}, format="json").status_code == 404
    assert not Event.objects.exists()


def test_it_needs_events_subscribe(make_api, organization, subscription) -> None:
    reader = make_api(organization, "events:read")

    response = send(reader, subscription, {"type": "person.created"}, format="json")

    assert response.status_code == 403
    assert not Event.objects.exists()


def test_with_events_off_it_is_refused_and_records_nothing(api, subscription, settings) -> None:
    settings.ESL_ENABLED = False

    response = send(api, subscription, {"type": "toy.deleted"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "events_disabled"
    assert not Event.objects.exists()
