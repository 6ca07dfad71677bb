"""End to end: a subscription's payload filter lets matching events reach the receiver, through the real relay
and worker, and leaves no delivery at all for the others."""

import json

import pytest
from rest_framework.test import APIClient

from deliveries.models import Delivery, DeliveryStatus
from sapien.events.models import Event, OutboxEntry
from tests.support.processes import wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

SECRET = "a-subscriber-secret-of-some-length"


def subscribe(api: APIClient, url: str, **body) -> str:
    response = api.post(
        "/api/v1/subscriptions", {"callback_url": url, "events": ["person.*"], "secret": SECRET, **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def relayed_and_sent() -> bool:
    """Every event fanned out, and every delivery it made finished."""
    return not OutboxEntry.objects.exists() and not Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()


def test_only_matching_events_reach_a_filtered_subscription(
    platform, receiver: Receiver, make_organization, make_api
) -> None:
    api = make_api(make_organization())
    filtered = subscribe(
        api, receiver.url, filter={"type": "person.created", "data": {"attributes": {"tags": ["vip"]}}}
    )
    unfiltered = subscribe(api, receiver.url)

    ada = api.post("/api/persons", {"name": "Ada", "attributes": {"tags": ["vip", "early"]}}, format="json").json()
    api.post("/api/persons", {"name": "Bob", "attributes": {"tags": ["early"]}}, format="json")
    api.patch(f"/api/persons/{ada['id']}", {"name": "Ada L."}, format="json")  # vip, but not person.created

    received = receiver.wait_for(4)  # 3 to the unfiltered subscription, 1 to the filtered one
    wait_until(relayed_and_sent, message="every event relayed and every delivery sent")
    by_subscription: dict[str, list[str]] = {}
    for request in received:
        subscription_id = str(Delivery.objects.get(pk=request.header("X-Sapien-Delivery")).subscription_id)
        by_subscription.setdefault(subscription_id, []).append(json.loads(request.body)["data"]["name"])
    assert {key: sorted(names) for key, names in by_subscription.items()} == {
        filtered: ["Ada"],
        unfiltered: ["Ada", "Ada L.", "Bob"],  # in any order: the subscription isn't ordered
    }
    assert Event.objects.count() == 3
    assert Delivery.objects.filter(subscription_id=filtered).count() == 1  # none at all for the other two
    assert len(receiver.requests) == 4


def test_a_changed_filter_applies_to_the_next_events_and_the_test_agrees_with_the_relay(
    platform, receiver: Receiver, make_organization, make_api
) -> None:
    api = make_api(make_organization())
    subscription_id = subscribe(api, receiver.url, filter={"data": {"name": "Ada"}})
    api.post("/api/persons", {"name": "Ada"}, format="json")
    receiver.wait_for(1)

    changed = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"filter": {"data": {"name": "Bob"}}}, format="json"
    )
    assert changed.status_code == 200
    api.post("/api/persons", {"name": "Ada"}, format="json")
    api.post("/api/persons", {"name": "Bob"}, format="json")

    received = receiver.wait_for(2)
    wait_until(relayed_and_sent, message="every event relayed and every delivery sent")
    assert [json.loads(r.body)["data"]["name"] for r in received] == ["Ada", "Bob"]
    assert len(receiver.requests) == 2
    first_ada, second_ada, bob = Event.objects.order_by("created_at")
    delivered = set(Delivery.objects.values_list("event_id", flat=True))
    assert delivered == {first_ada.id, bob.id}
    for event in (second_ada, bob):  # relayed under the current filter: the test says what the relay did
        tested = api.post(
            f"/api/v1/subscriptions/{subscription_id}/test-filter", {"event_id": str(event.id)}, format="json"
        )
        assert tested.json() == {"matches": event.id in delivered, "filter": {"data": {"name": "Bob"}}}
