"""The delivery log API: newest first, filters, attempts, no secrets; blobs refuse bad links."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from deliveries.blobs import blob_signature
from deliveries.models import Blob, Delivery, DeliveryAttempt, DeliveryStatus
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.events import events_backdate

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(organization):
    subscription = Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="top-secret-value"
    )
    deliveries = []
    for index, (event_type, status) in enumerate(
        [("person.created", "succeeded"), ("pet.created", "failed"), ("person.updated", "pending")]
    ):
        event = record_event(organization_id=organization.id, event_type=event_type, data={"n": index})
        assert event is not None
        event.created_at = timezone.now() - timedelta(minutes=10 - index)  # minutes apart, oldest first
        events_backdate(event.created_at, pk=event.pk)
        delivery = Delivery.objects.create(
            organization=organization, event=event, event_created_at=event.created_at, event_type=event.type,
            subscription=subscription, status=status,
        )  # fmt: skip
        DeliveryAttempt.objects.create(
            delivery=delivery, event_created_at=event.created_at, number=1, started_at=timezone.now(), duration_ms=12, status_code=500,
            succeeded=False, response_excerpt="nope",
        )  # fmt: skip
        deliveries.append(delivery)
    return subscription, deliveries


def test_newest_first_with_event_and_attempts(api: APIClient, log) -> None:
    subscription, deliveries = log

    page = api.get(f"/api/v1/subscriptions/{subscription.id}/deliveries").json()

    assert [entry["id"] for entry in page["results"]] == [str(d.id) for d in reversed(deliveries)]
    entry = page["results"][0]
    assert entry["event"]["type"] == "person.updated"
    assert entry["event"]["payload"]["data"] == {"n": 2}
    assert entry["attempts"] == [
        {
            "number": 1, "started_at": entry["attempts"][0]["started_at"], "duration_ms": 12, "status_code": 500,
            "succeeded": False, "error": "", "response_excerpt": "nope",
        }
    ]  # fmt: skip
    assert "top-secret-value" not in str(page)


def test_filters(api: APIClient, log) -> None:
    subscription, deliveries = log
    url = f"/api/v1/subscriptions/{subscription.id}/deliveries"

    assert [entry["id"] for entry in api.get(url, {"status": "failed"}).json()["results"]] == [str(deliveries[1].id)]
    assert api.get(url, {"event_type": "person.created"}).json()["results"][0]["id"] == str(deliveries[0].id)
    since = (timezone.now() - timedelta(minutes=8, seconds=30)).isoformat()
    assert [entry["id"] for entry in api.get(url, {"since": since}).json()["results"]] == [str(deliveries[2].id)]
    assert [entry["id"] for entry in api.get(url, {"until": since}).json()["results"]] == [
        str(deliveries[1].id), str(deliveries[0].id)
    ]  # fmt: skip
    assert api.get(url, {"status": "exploded"}).status_code == 400


def test_one_delivery(api: APIClient, log) -> None:
    subscription, deliveries = log

    detail = api.get(f"/api/v1/subscriptions/{subscription.id}/deliveries/{deliveries[1].id}").json()

    assert detail["status"] == "failed"
    assert len(detail["attempts"]) == 1


def test_redeliver_resets_the_chain(api: APIClient, log) -> None:
    subscription, deliveries = log

    answer = api.post(f"/api/v1/subscriptions/{subscription.id}/deliveries/{deliveries[1].id}/redeliver")

    assert answer.status_code == 202
    delivery = Delivery.objects.get(pk=deliveries[1].pk)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempt_count == 0
    assert delivery.next_attempt_at is not None


def test_reading_the_log_needs_events_read(organization, make_api, log) -> None:
    subscription, _ = log

    assert (
        make_api(organization, scopes="events:subscribe")
        .get(f"/api/v1/subscriptions/{subscription.id}/deliveries")
        .status_code
        == 403
    )


def test_an_expired_or_tampered_blob_link_is_refused(organization, client: Client, tmp_path, settings) -> None:
    settings.MEDIA_ROOT = tmp_path
    event = record_event(organization_id=organization.id, event_type="person.created", data={})
    assert event is not None
    (tmp_path / "b.json").write_bytes(b"{}")
    blob = Blob.objects.create(
        event=event, organization=organization, path="b.json", size_bytes=2, checksum="sha256:x",
        expires_at=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    future = int(time.time()) + 3600
    past = int(time.time()) - 1

    assert (
        client.get(
            f"/api/v1/blobs/{blob.id}", {"expires": str(future), "signature": blob_signature(blob.id, future)}
        ).status_code
        == 200
    )
    assert (
        client.get(
            f"/api/v1/blobs/{blob.id}", {"expires": str(past), "signature": blob_signature(blob.id, past)}
        ).status_code
        == 403
    )
    assert (
        client.get(
            f"/api/v1/blobs/{blob.id}", {"expires": str(future + 1), "signature": blob_signature(blob.id, future)}
        ).status_code
        == 403
    )
    assert client.get(f"/api/v1/blobs/{blob.id}").status_code == 403
