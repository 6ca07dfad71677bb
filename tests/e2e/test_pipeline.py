"""End to end: an API change reaches the receiver, signed, through real processes."""

import hashlib
import hmac
import json
import uuid

import pytest
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from sapien.core.models import Tier
from sapien.events.models import Event, OutboxEntry
from tests.support.processes import wait_until
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.e2e

SECRET = "a-subscriber-secret-of-some-length"


def subscribe(api: APIClient, url: str, events: list[str], secret: str = SECRET) -> dict:
    response = api.post(
        "/api/v1/subscriptions", {"callback_url": url, "events": events, "secret": secret}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_a_created_person_arrives_signed_both_ways(platform, receiver: Receiver, make_organization, make_api) -> None:
    api = make_api(make_organization())
    subscription = subscribe(api, receiver.url, ["person.*"])

    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()

    (request,) = receiver.wait_for(1)
    event = json.loads(request.body)
    assert event["type"] == "person.created"
    assert event["data"] == person
    # Seed 001's PHP receiver: hash_hmac('sha256', $payload, SECRET) compared with hash_equals.
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
    # Standard Webhooks, with replay protection, keyed with the secret's UTF-8 bytes.
    verified = Webhook(SECRET.encode()).verify(request.body, request.headers)
    assert verified["id"] == event["id"]
    assert request.header("webhook-id") == event["id"]
    assert request.header("X-Sapien-Event") == "person.created"
    assert request.header("X-Sapien-Attempt") == "1"
    assert request.header("User-Agent") == "Sapien-ESL/1.0.0"
    assert request.header("Content-Type") == "application/json"
    delivery = Delivery.objects.get(pk=request.header("X-Sapien-Delivery"))
    assert str(delivery.subscription_id) == subscription["id"]
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED, message="success")

    log = api.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries").json()
    assert len(log["results"]) == 1
    entry = log["results"][0]
    assert entry["status"] == "succeeded"
    assert entry["event"]["id"] == event["id"]
    assert entry["attempts"][0]["status_code"] == 200
    assert SECRET not in json.dumps(log)


def test_a_free_tier_subscription_gets_exactly_four_attempts_then_failed(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform_factory(ESL_RETRY_DELAY_MS=100).start_all()
    receiver.responder = always(500, body=b"receiver is broken")
    api = make_api(make_organization(tier=Tier.FREE))
    subscription = subscribe(api, receiver.url, ["pet.created"])

    api.post("/api/pets", {"name": "Rex", "type": "dog"}, format="json")

    requests_seen = receiver.wait_for(4, timeout=40)
    wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.FAILED).exists(), timeout=20, message="failed")
    assert [r.header("X-Sapien-Attempt") for r in requests_seen] == ["1", "2", "3", "4"]
    assert len({r.header("webhook-id") for r in requests_seen}) == 1
    assert DeliveryAttempt.objects.count() == 4
    entry = api.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries", {"status": "failed"}).json()["results"][0]
    assert [a["status_code"] for a in entry["attempts"]] == [500, 500, 500, 500]
    assert entry["attempts"][0]["response_excerpt"] == "receiver is broken"
    receiver.wait_for(4)
    assert len(receiver.requests) == 4  # and no fifth


def test_a_large_payload_is_spilled_to_a_signed_blob(
    platform, receiver: Receiver, make_organization, make_api, e2e_settings
) -> None:
    api = make_api(make_organization())
    subscribe(api, receiver.url, ["person.created"])
    notes = "x" * 300_000

    api.post("/api/persons", {"name": "Big", "notes": notes}, format="json")

    (request,) = receiver.wait_for(1)
    assert len(request.body) < 262144
    event = json.loads(request.body)
    assert "data" not in event
    ref = event["data_ref"]
    assert ref["type"] == "blob"
    blob = requests_get_via_django(ref["uri"])
    assert blob.status_code == 200
    assert json.loads(blob.content)["notes"] == notes
    assert ref["size_bytes"] == len(blob.content)
    assert ref["checksum"] == "sha256:" + hashlib.sha256(blob.content).hexdigest()
    assert Webhook(SECRET.encode()).verify(request.body, request.headers)["id"] == event["id"]

    tampered = ref["uri"].replace("signature=", "signature=0")
    assert requests_get_via_django(tampered).status_code == 403


def requests_get_via_django(uri: str):
    """Fetches a signed blob URL through the in-process test client, without any token."""
    from django.test import Client

    path = uri.split("://", 1)[1].split("/", 1)[1]
    return Client().get("/" + path)


def test_another_organization_receives_none_of_it(platform, make_organization, make_api) -> None:
    mine_receiver, their_receiver = Receiver(), Receiver()
    try:
        mine, theirs = make_api(make_organization("Mine")), make_api(make_organization("Theirs"))
        subscribe(mine, mine_receiver.url, ["*"])
        their_subscription = subscribe(theirs, their_receiver.url, ["*"])

        mine.post("/api/persons", {"name": "Private"}, format="json")
        theirs.post("/api/toys", {"name": "Their toy"}, format="json")

        mine_receiver.wait_for(1)
        their_receiver.wait_for(1)
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2, message="both done")
        assert [json.loads(r.body)["type"] for r in their_receiver.requests] == ["toy.created"]
        assert mine.get(f"/api/v1/subscriptions/{their_subscription['id']}").status_code == 404
        assert mine.get(f"/api/v1/subscriptions/{their_subscription['id']}/deliveries").status_code == 404
    finally:
        mine_receiver.close()
        their_receiver.close()


def test_ping_reaches_only_the_tested_subscription(platform, receiver: Receiver, make_organization, make_api) -> None:
    other = Receiver()
    try:
        api = make_api(make_organization())
        tested = subscribe(api, receiver.url, ["person.created"])
        subscribe(api, other.url, ["*"])

        answer = api.post(f"/api/v1/subscriptions/{tested['id']}/test")

        assert answer.status_code == 202
        (request,) = receiver.wait_for(1)
        assert json.loads(request.body)["type"] == "system.ping"
        assert json.loads(request.body)["id"] == answer.json()["event_id"]
        wait_until(lambda: not OutboxEntry.objects.exists(), message="relayed")
        assert other.requests == []
    finally:
        other.close()


def test_a_410_deactivates_the_subscription(platform, receiver: Receiver, make_organization, make_api) -> None:
    receiver.responder = always(410)
    api = make_api(make_organization())
    subscription = subscribe(api, receiver.url, ["person.created"])

    api.post("/api/persons", {"name": "Ada"}, format="json")

    receiver.wait_for(1)
    wait_until(lambda: not api.get(f"/api/v1/subscriptions/{subscription['id']}").json()["active"], message="off")
    assert Delivery.objects.get().status == DeliveryStatus.FAILED
    answer = api.get(f"/api/v1/subscriptions/{subscription['id']}").json()
    assert answer["disabled_reason"] == "The receiver answered 410 Gone."
    (notice,) = Event.objects.filter(type="system.subscription.disabled")
    assert notice.payload["data"]["subscription_id"] == subscription["id"]
    api.post("/api/persons", {"name": "Bob"}, format="json")
    wait_until(lambda: not OutboxEntry.objects.exists(), message="relayed")
    assert Delivery.objects.count() == 1
    assert len(receiver.requests) == 1


def test_redeliver_starts_a_new_chain(platform, receiver: Receiver, make_organization, make_api) -> None:
    api = make_api(make_organization())
    subscription = subscribe(api, receiver.url, ["person.created"])
    api.post("/api/persons", {"name": "Ada"}, format="json")
    (first,) = receiver.wait_for(1)
    delivery_id = first.header("X-Sapien-Delivery")
    wait_until(lambda: Delivery.objects.get(pk=delivery_id).status == DeliveryStatus.SUCCEEDED, message="done")

    answer = api.post(f"/api/v1/subscriptions/{subscription['id']}/deliveries/{delivery_id}/redeliver")

    assert answer.status_code == 202
    second = receiver.wait_for(2)[1]
    assert second.header("webhook-id") == first.header("webhook-id")
    assert second.header("X-Sapien-Attempt") == "1"
    missing = api.post(f"/api/v1/subscriptions/{subscription['id']}/deliveries/{uuid.uuid4()}/redeliver")
    assert missing.status_code == 404
