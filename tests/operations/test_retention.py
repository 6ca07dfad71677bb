"""Retention drops a whole day of history at a time, and never what is pending, unrelayed or still owed a replay."""

import io
from datetime import UTC, timedelta

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from deliveries.counters import counter_totals
from deliveries.models import Blob, Delivery, DeliveryAttempt, DeliveryStatus, OutcomeCounter
from deliveries.partitions import HISTORY_TABLES, history_days, history_partitions_ensure
from deliveries.retention import RETENTION_EXPIRED, check_retention_outlasts_retries, purge_expired
from sapien.core.partitions import DAYS_AHEAD, day_partitions
from sapien.events.models import Event, OutboxEntry, QuotaUsage
from sapien.events.outbox import record_event
from sapien.events.quota import window_start
from subscriptions.models import Subscription
from tests.support.events import events_backdate
from tests.support.processes import database_url

pytestmark = pytest.mark.django_db

# Noon today: every age below lands on a known day, whatever the time the suite runs.
NOW = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def _one_day_of_retention(settings):
    settings.ESL_RETENTION_HOURS = 24


@pytest.fixture
def subscription(organization):
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def aged_event(
    organization, subscription, *, days: float, status: str = DeliveryStatus.SUCCEEDED, relayed: bool = True
) -> Event:
    """An event ``days`` before NOW, with one delivery and one attempt once relayed."""
    with transaction.atomic():
        event = record_event(organization_id=organization.id, event_type="person.created", data={})
    assert event is not None
    created = NOW - timedelta(days=days)
    events_backdate(created, pk=event.pk)
    if relayed:
        OutboxEntry.objects.filter(event_id=event.pk).delete()
    if relayed:
        delivery = Delivery.objects.create(
            organization=organization, event=event, event_created_at=created, event_type=event.type,
            subscription=subscription, status=status, next_attempt_at=created,
            completed_at=None if status == DeliveryStatus.PENDING else created,
        )  # fmt: skip
        DeliveryAttempt.objects.create(
            delivery=delivery, event_created_at=created, number=1, started_at=created, duration_ms=5,
            status_code=200, succeeded=True,
        )  # fmt: skip
    event.created_at = created
    return event


def test_days_past_retention_go_whole_with_their_deliveries_attempts_and_blobs(
    organization, subscription, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    old = [aged_event(organization, subscription, days=3) for _ in range(7)]
    recent = aged_event(organization, subscription, days=0.1)
    path = default_storage.save("blobs/old.json", io.BytesIO(b"{}"))
    Blob.objects.create(event=old[0], organization=organization, path=path, size_bytes=2, checksum="sha256:x",
                        expires_at=NOW)  # fmt: skip

    result = purge_expired(now=NOW)

    assert result.days == 2 and result.blobs == 1  # three and two days ago (an empty day between)
    assert list(Event.objects.values_list("id", flat=True)) == [recent.id]
    assert list(Delivery.objects.values_list("event_id", flat=True)) == [recent.id]
    assert DeliveryAttempt.objects.count() == 1
    assert not Blob.objects.exists()
    assert not default_storage.exists(path)
    assert (NOW - timedelta(days=3)).date() not in history_days()


def test_partitions_are_ready_from_yesterday_to_a_week_ahead_in_every_history_table() -> None:
    purge_expired(now=NOW)

    expected = {NOW.date() + timedelta(days=offset) for offset in range(-1, DAYS_AHEAD + 1)}
    with connection.cursor() as cursor:
        for table in HISTORY_TABLES:
            assert expected <= {partition.day for partition in day_partitions(cursor, table.name)}, table.name


def test_rows_the_default_partition_caught_move_into_a_partition_of_their_own(organization, subscription) -> None:
    event = aged_event(organization, subscription, days=0.9)  # a day no partition was made for

    purge_expired(now=NOW)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_event_default")
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT tableoid::regclass::text FROM events_event WHERE id = %s", [event.id])
        assert cursor.fetchone() == (f"events_event_p{event.created_at:%Y%m%d}",)


def test_a_pending_delivery_at_the_end_of_retention_is_marked_failed_and_stays_visible_first(
    organization, subscription, api
) -> None:
    event = aged_event(organization, subscription, days=1.05, status=DeliveryStatus.PENDING)

    first = purge_expired(now=NOW)

    delivery = Delivery.objects.get(event=event)
    assert first.expired_pending == 1 and first.days == 0  # kept, visibly failed, for a while
    assert counter_totals(OutcomeCounter, per_organization=False)[None]["deliveries_failed"] == 1  # on /metrics
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.FAILED, RETENTION_EXPIRED)
    log = api.get(f"/api/v1/subscriptions/{subscription.id}/deliveries").json()
    assert [row["id"] for row in log["results"]] == [str(delivery.id)]

    assert purge_expired(now=NOW + timedelta(days=1)).days >= 1
    assert not Delivery.objects.exists()


def test_a_day_holding_unrelayed_events_is_kept(organization, subscription) -> None:
    unrelayed = aged_event(organization, subscription, days=3, relayed=False)

    result = purge_expired(now=NOW)

    assert result.days == 0
    assert set(result.kept.values()) == {"it holds events the relay has not fanned out yet"}
    assert Event.objects.filter(pk=unrelayed.pk).exists()


def test_what_a_disabled_subscription_missed_stays_until_it_is_re_enabled(organization, subscription) -> None:
    missed = aged_event(organization, subscription, days=3, status=DeliveryStatus.FAILED)
    Subscription.objects.filter(pk=subscription.pk).update(
        active=False, failing_since=NOW - timedelta(days=3), disabled_at=NOW - timedelta(days=2)
    )

    held = purge_expired(now=NOW)

    assert held.days == 0 and Event.objects.filter(pk=missed.pk).exists()
    assert set(held.kept.values()) == {"a failing or disabled subscription missed events of it"}

    Subscription.objects.filter(pk=subscription.pk).update(active=True, failing_since=None, disabled_at=None)
    assert purge_expired(now=NOW).days == 2
    assert not Event.objects.filter(pk=missed.pk).exists()


def test_purge_is_idempotent(organization, subscription) -> None:
    aged_event(organization, subscription, days=3)

    assert purge_expired(now=NOW).days == 2
    assert purge_expired(now=NOW).days == 0


def test_old_quota_windows_are_purged_too(organization) -> None:
    current = window_start(NOW)
    QuotaUsage.objects.create(organization=organization, window_start=current, events=3)
    QuotaUsage.objects.create(organization=organization, window_start=current - timedelta(hours=30), events=9)

    assert purge_expired(now=NOW).quota_windows == 1
    assert list(QuotaUsage.objects.values_list("events", flat=True)) == [3]


def test_a_retention_shorter_than_a_deliverys_longest_life_is_refused_at_start(settings) -> None:
    settings.ESL_RETRY_DELAY_MS, settings.ESL_RETRY_MAX_DELAY_MS = 3_600_000, 6 * 3_600_000  # chains of ~2 days

    with pytest.raises(ImproperlyConfigured, match="ESL_RETENTION_HOURS"):
        check_retention_outlasts_retries()

    settings.ESL_RETENTION_HOURS = 24 * 3
    check_retention_outlasts_retries()  # accepted


def test_the_defaults_keep_what_is_owed_within_retention() -> None:
    check_retention_outlasts_retries()


@pytest.mark.django_db(transaction=True)  # the reader below must see the partitions made for the day
def test_a_day_whose_tables_another_session_holds_is_kept_for_the_next_pass_without_waiting(
    organization, subscription
) -> None:
    old = aged_event(organization, subscription, days=3)
    history_partitions_ensure(now=NOW)  # its day's partition made: the pass below needs no lock to make one
    with psycopg.connect(database_url()) as reader:
        reader.execute("LOCK TABLE deliveries_delivery IN ACCESS SHARE MODE")  # a long read, still open

        held = purge_expired(now=NOW)

        assert held.days == 0 and Event.objects.filter(pk=old.pk).exists()
        assert "its tables were in use; the next pass drops it" in held.kept.values()
    assert purge_expired(now=NOW).days == 2
