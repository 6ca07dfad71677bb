"""Retention: old events, deliveries, attempts and blobs go in batches; nothing due is lost silently."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from deliveries.models import Blob, Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.retention import purge_expired
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(organization):
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def aged_event(
    organization, subscription, *, hours: float, status: str = DeliveryStatus.SUCCEEDED, relayed: bool = True
):
    event = record_event(organization_id=organization.id, event_type="person.created", data={})
    assert event is not None
    created = timezone.now() - timedelta(hours=hours)
    Event.objects.filter(pk=event.pk).update(created_at=created, relayed_at=created if relayed else None)
    if relayed:
        delivery = Delivery.objects.create(
            organization=organization, event=event, subscription=subscription, status=status,
            next_attempt_at=timezone.now(), completed_at=None if status == DeliveryStatus.PENDING else created,
        )  # fmt: skip
        DeliveryAttempt.objects.create(
            delivery=delivery, number=1, started_at=created, duration_ms=5, status_code=200, succeeded=True
        )
    return event


def test_old_events_go_in_batches_with_their_deliveries_attempts_and_blobs(
    organization, subscription, settings, tmp_path
) -> None:
    settings.ESL_RETENTION_HOURS = 24
    settings.MEDIA_ROOT = tmp_path
    old = [aged_event(organization, subscription, hours=30) for _ in range(7)]
    recent = aged_event(organization, subscription, hours=2)
    path = default_storage.save("blobs/old.json", __import__("io").BytesIO(b"{}"))
    Blob.objects.create(event=old[0], organization=organization, path=path, size_bytes=2, checksum="sha256:x",
                        expires_at=timezone.now())  # fmt: skip

    result = purge_expired(batch=3)

    assert (result.events, result.deliveries, result.attempts, result.blobs) == (7, 7, 7, 1)
    assert list(Event.objects.values_list("id", flat=True)) == [recent.id]
    assert Delivery.objects.count() == 1
    assert not default_storage.exists(path)


def test_a_pending_delivery_at_the_end_of_retention_is_marked_failed_first(
    organization, subscription, settings
) -> None:
    settings.ESL_RETENTION_HOURS = 24
    event = aged_event(organization, subscription, hours=25, status=DeliveryStatus.PENDING)

    first = purge_expired()

    delivery = Delivery.objects.get(event=event)
    assert first.expired_pending == 1
    assert first.events == 0  # kept, visibly failed, for a while
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "retention expired before a successful attempt"

    Delivery.objects.filter(pk=delivery.pk).update(completed_at=timezone.now() - timedelta(hours=2))
    assert purge_expired().events == 1


def test_unrelayed_and_recent_events_are_never_purged(organization, subscription, settings) -> None:
    settings.ESL_RETENTION_HOURS = 24
    unrelayed = aged_event(organization, subscription, hours=30, relayed=False)
    recent_pending = aged_event(organization, subscription, hours=1, status=DeliveryStatus.PENDING)

    result = purge_expired()

    assert result.events == 0
    assert set(Event.objects.values_list("id", flat=True)) == {unrelayed.id, recent_pending.id}
    assert Delivery.objects.get(event=recent_pending).status == DeliveryStatus.PENDING


def test_purge_is_idempotent(organization, subscription) -> None:
    aged_event(organization, subscription, hours=48)

    assert purge_expired().events == 1
    assert purge_expired().events == 0


def test_old_quota_windows_are_purged_too(organization, settings) -> None:
    from sapien.events.models import QuotaUsage
    from sapien.events.quota import window_start

    settings.ESL_RETENTION_HOURS = 24
    current = window_start(timezone.now())
    QuotaUsage.objects.create(organization=organization, window_start=current, events=3)
    QuotaUsage.objects.create(organization=organization, window_start=current - timedelta(hours=30), events=9)

    assert purge_expired().quota_windows == 1
    assert list(QuotaUsage.objects.values_list("events", flat=True)) == [3]
