"""A subscription's health: hourly counts kept by the record statement, failing and recovered notices once per
episode, and the half-open probe of a disabled subscription."""

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries.claims import claim_due, record_outcomes
from deliveries.counters import DURATION_BUCKETS_MS
from deliveries.health import (
    HEALTH_HOURS_KEPT,
    duration_quantile,
    health_hours_purge,
    hour_start,
    subscription_stats,
)
from deliveries.models import DeliveryStatus, SubscriptionHealthHour
from deliveries.relay import relay_pending
from deliveries.retry import decide
from deliveries.transport import DeliveryResult
from sapien.events.models import Event, OutboxEntry
from sapien.events.outbox import record_event
from subscriptions.health import probe_interval, subscription_health_recovered, subscriptions_probe_due
from subscriptions.models import Subscription
from subscriptions.services import subscription_disable, subscription_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _health_settings(settings):
    settings.ESL_DISABLE_AFTER_FAILURES = 4
    settings.ESL_DISABLE_AFTER_SECONDS = 86400
    settings.ESL_FAILING_NOTICE_SHARE = 0.5  # told failing at 2 failed deliveries in a row
    settings.ESL_PROBE_MIN_INTERVAL_SECONDS = 60
    settings.ESL_PROBE_MAX_INTERVAL_SECONDS = 3600
    settings.ESL_RETRY_DELAY_MS = 3_600_000  # a retry is never due again within a test


def subscription(organization, events=("person.*",), **fields):
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=list(events), secret="s" * 20,
        **fields,
    )  # fmt: skip


def deliver(
    organization, *, status_code: int | None, duration_ms: int = 3, final: bool = True, error: str = ""
) -> None:
    """One person.created event relayed, claimed and recorded as answered ``status_code`` (a failure past every
    retry budget when ``final``)."""
    with transaction.atomic():
        record_event(organization_id=organization.id, event_type="person.created", data={})
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    now = timezone.now()
    outcomes = []
    for claimed in claim_due(batch_size=100, token=token):
        claimed = replace(claimed, attempt=99) if final else claimed
        result = DeliveryResult(started_at=now, duration_ms=duration_ms, status_code=status_code, error=error)
        outcomes.append(decide(claimed, result, now=now))
    record_outcomes(outcomes, token=token)


def notices(organization, event_type: str) -> list[dict]:
    return [e.payload["data"] for e in Event.objects.filter(organization=organization, type=event_type)]


# ---- the hourly counts and the stats they answer


@pytest.mark.parametrize(
    ("q", "buckets", "total", "longest", "expected"),
    [
        (0.5, (0,) * 11, 0, 0, None),  # no attempts, no percentile
        (0.95, (4,) * 11, 4, 3, 3),  # every attempt within 5 ms: never above the longest seen
        (0.5, (0, 0, 0, 0, 10, 10, 10, 10, 10, 10, 10), 10, 90, 75),  # half-way through the 50-100 ms bucket
        (0.95, (0, 0, 0, 0, 10, 18, 20, 20, 20, 20, 20), 20, 400, 375),  # three quarters through 250-500 ms
        (0.95, (0, 0, 0, 0, 10, 18, 20, 20, 20, 20, 20), 20, 300, 300),  # the same, capped at the longest seen
        (0.95, (0,) * 10 + (1,), 20, 12_000, 11_895),  # above the last edge: up to the longest attempt
    ],
)
def test_duration_percentiles_are_interpolated_in_their_bucket(q, buckets, total, longest, expected) -> None:
    assert len(buckets) == len(DURATION_BUCKETS_MS)
    assert duration_quantile(q, buckets, total=total, longest_ms=longest) == expected


def test_stats_count_deliveries_attempts_durations_and_the_last_failure(organization) -> None:
    watched = subscription(organization)
    deliver(organization, status_code=200, duration_ms=40)
    deliver(organization, status_code=200, duration_ms=60)
    deliver(organization, status_code=500, duration_ms=300, final=False)  # a retry still pending
    deliver(organization, status_code=None, duration_ms=5000, error="timeout: ReadTimeout")

    stats = subscription_stats(subscription_id=watched.id, now=timezone.now())

    for window in (stats["last_hour"], stats["last_day"]):
        assert window["deliveries"] == {"succeeded": 2, "failed": 1}
        assert window["attempts"] == {"total": 4, "failed": 2}
        assert window["duration_ms"] == {"p50": 100, "p95": 4500}
    assert stats["last_day"]["since"] == hour_start(timezone.now()) - timedelta(hours=24)
    assert stats["last_success_at"] is not None
    assert stats["last_failure"]["status_code"] is None
    assert stats["last_failure"]["reason"] == "timeout: ReadTimeout"
    assert stats["last_failure"]["at"] >= stats["last_success_at"]


def test_an_http_failure_is_the_last_failure_with_its_status(organization) -> None:
    watched = subscription(organization)
    deliver(organization, status_code=503)

    failure = subscription_stats(subscription_id=watched.id, now=timezone.now())["last_failure"]

    assert (failure["status_code"], failure["reason"]) == (503, "HTTP 503")


def test_an_hour_outside_a_window_is_not_counted_in_it_and_other_subscriptions_never_are(organization) -> None:
    watched, other = subscription(organization), subscription(organization, events=["pet.*"])
    now = timezone.now()
    SubscriptionHealthHour.objects.create(
        subscription_id=watched.id, hour=hour_start(now) - timedelta(hours=5), shard=0, attempts=7,
        deliveries_succeeded=7, duration_le_10000ms=7, last_success_at=now - timedelta(hours=5),
    )  # fmt: skip
    SubscriptionHealthHour.objects.create(
        subscription_id=watched.id, hour=hour_start(now) - timedelta(hours=30), shard=3, attempts=1,
        deliveries_failed=1, last_failure_at=now - timedelta(hours=30), last_failure_reason="HTTP 500",
        last_failure_status_code=500,
    )  # fmt: skip
    SubscriptionHealthHour.objects.create(subscription_id=other.id, hour=hour_start(now), shard=0, attempts=99)

    stats = subscription_stats(subscription_id=watched.id, now=now)

    assert stats["last_hour"]["attempts"] == {"total": 0, "failed": 0}
    assert stats["last_hour"]["duration_ms"] == {"p50": None, "p95": None}
    assert stats["last_day"]["deliveries"] == {"succeeded": 7, "failed": 0}
    assert stats["last_success_at"] == now - timedelta(hours=5)
    assert stats["last_failure"]["reason"] == "HTTP 500"  # older than the day, within the hours kept


def test_stats_read_two_statements_however_long_the_history(organization, django_assert_num_queries) -> None:
    watched = subscription(organization)
    now = timezone.now()
    SubscriptionHealthHour.objects.bulk_create(
        SubscriptionHealthHour(subscription_id=watched.id, hour=hour_start(now) - timedelta(hours=h), shard=s,
                               attempts=1, deliveries_succeeded=1, duration_le_5ms=1)
        for h in range(HEALTH_HOURS_KEPT) for s in range(4)
    )  # fmt: skip

    with django_assert_num_queries(2):
        stats = subscription_stats(subscription_id=watched.id, now=now)

    assert stats["last_hour"]["deliveries"]["succeeded"] == 2 * 4
    assert stats["last_day"]["deliveries"]["succeeded"] == 25 * 4


def test_retention_deletes_the_hours_past_those_kept_and_only_them(organization) -> None:
    watched = subscription(organization)
    now = timezone.now()
    for hours_ago in (0, HEALTH_HOURS_KEPT, HEALTH_HOURS_KEPT + 1, HEALTH_HOURS_KEPT + 50):
        SubscriptionHealthHour.objects.create(
            subscription_id=watched.id, hour=hour_start(now) - timedelta(hours=hours_ago), shard=0
        )

    assert health_hours_purge(now=now) == 2

    kept = sorted(hour_start(now) - row.hour for row in SubscriptionHealthHour.objects.all())
    assert kept == [timedelta(0), timedelta(hours=HEALTH_HOURS_KEPT)]


# ---- failing and recovered, once per episode


def test_failing_is_told_once_when_the_run_reaches_the_share_of_the_disabling_limit(organization) -> None:
    failing = subscription(organization)

    deliver(organization, status_code=500)
    assert notices(organization, "system.subscription.failing") == []

    deliver(organization, status_code=500)
    deliver(organization, status_code=500)

    (notice,) = notices(organization, "system.subscription.failing")
    failing.refresh_from_db()
    assert notice == {
        "subscription_id": str(failing.id),
        "callback_url": "https://hooks.example.com/",
        "consecutive_failures": 2,
        "failing_since": notice["failing_since"],
        "last_failure_reason": "HTTP 500",
        "disable_after_failures": 4,
        "disables_at_earliest": notice["disables_at_earliest"],
    }
    assert failing.failing_notified_at is not None and failing.consecutive_failures == 3
    assert failing.active  # the period has not passed: failing, not disabled


def test_a_success_after_a_failing_notice_is_told_recovered_once(organization) -> None:
    recovering = subscription(organization)
    deliver(organization, status_code=500)
    deliver(organization, status_code=500)

    deliver(organization, status_code=200)
    deliver(organization, status_code=200)

    (notice,) = notices(organization, "system.subscription.recovered")
    assert notice["subscription_id"] == str(recovering.id)
    assert (notice["active"], notice["probe"], notice["disabled_at"]) == (True, False, None)
    assert notice["failing_notice_at"] is not None
    recovering.refresh_from_db()
    assert (recovering.consecutive_failures, recovering.failing_notified_at) == (0, None)


def test_a_success_without_a_failing_notice_tells_nothing(organization) -> None:
    subscription(organization)
    deliver(organization, status_code=500)  # one failure: below the notice's threshold

    deliver(organization, status_code=200)

    assert notices(organization, "system.subscription.failing") == []
    assert notices(organization, "system.subscription.recovered") == []


def test_a_new_episode_is_told_again(organization) -> None:
    subscription(organization)
    for status_code in (500, 500, 200, 500, 500, 200):
        deliver(organization, status_code=status_code)

    assert len(notices(organization, "system.subscription.failing")) == 2
    assert len(notices(organization, "system.subscription.recovered")) == 2


def test_a_recovery_nobody_was_told_of_is_told_with_the_next_success(organization) -> None:
    """As after a crash between the record statement and the notice: the next success tells it."""
    recovering = subscription(organization)
    Subscription.objects.filter(pk=recovering.pk).update(failing_notified_at=timezone.now())

    deliver(organization, status_code=200)

    assert len(notices(organization, "system.subscription.recovered")) == 1


def test_recovered_is_not_told_when_a_failure_followed_the_success(organization) -> None:
    recovering = subscription(organization)
    Subscription.objects.filter(pk=recovering.pk).update(failing_notified_at=timezone.now(), consecutive_failures=1)

    assert subscription_health_recovered(subscription_ids=[recovering.id], now=timezone.now()) == 0
    assert notices(organization, "system.subscription.recovered") == []


# ---- the half-open probe


def disabled(organization, *, probe: bool, when=None) -> Subscription:
    with transaction.atomic():
        target = subscription(organization, probe_when_disabled=probe, consecutive_failures=20)
        subscription_disable(subscription=target, reason="Disabled after 20 failures.", now=when or timezone.now())
    return target


def test_disabling_schedules_the_first_probe_only_when_opted_in(organization) -> None:
    now = timezone.now()
    probed, unprobed = disabled(organization, probe=True, when=now), disabled(organization, probe=False, when=now)

    assert probed.probe_next_at == now + timedelta(seconds=60)
    assert unprobed.probe_next_at is None


def test_probe_intervals_double_from_the_minimum_up_to_the_maximum() -> None:
    assert [probe_interval(n).total_seconds() for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert probe_interval(10_000).total_seconds() == 3600


def test_the_probe_pass_pings_due_subscriptions_and_backs_off(organization) -> None:
    start = timezone.now()
    probed = disabled(organization, probe=True, when=start)
    disabled(organization, probe=False, when=start)
    subscription(organization)  # active: never probed

    assert subscriptions_probe_due(now=start + timedelta(seconds=59)) == 0
    assert subscriptions_probe_due(now=start + timedelta(seconds=60)) == 1
    assert subscriptions_probe_due(now=start + timedelta(seconds=179)) == 0
    assert subscriptions_probe_due(now=start + timedelta(seconds=180)) == 1

    probed.refresh_from_db()
    assert probed.probes_sent == 2
    assert probed.probe_next_at == start + timedelta(seconds=180 + 240)
    pings = Event.objects.filter(type="system.ping").order_by("created_at")
    assert [(p.recipient_id, p.payload["data"]["probe"]) for p in pings] == [(probed.id, 1), (probed.id, 2)]
    assert OutboxEntry.objects.filter(event_id__in=[p.id for p in pings]).count() == 2


def test_a_probe_pass_does_bounded_work(organization) -> None:
    start = timezone.now()
    for _ in range(3):
        disabled(organization, probe=True, when=start)

    assert subscriptions_probe_due(now=start + timedelta(minutes=5), limit=2) == 2
    assert subscriptions_probe_due(now=start + timedelta(minutes=5), limit=2) == 1


def test_a_ping_to_a_disabled_subscription_gets_one_attempt(organization) -> None:
    target = disabled(organization, probe=True)
    with transaction.atomic():
        record_event(organization_id=organization.id, event_type="system.ping", data={}, recipient_id=target.id)
    relay_pending(batch_size=10)
    now = timezone.now()
    (claimed,) = claim_due(batch_size=10, token=uuid.uuid4())

    outcome = decide(claimed, DeliveryResult(started_at=now, duration_ms=1, status_code=503), now=now)

    assert (outcome.status, outcome.next_attempt_at) == (DeliveryStatus.FAILED, None)


def test_an_answered_probe_tells_recovered_and_leaves_the_subscription_disabled(organization) -> None:
    start = timezone.now()
    target = disabled(organization, probe=True, when=start)
    failing_since = start - timedelta(days=1)
    Subscription.objects.filter(pk=target.pk).update(failing_since=failing_since)
    subscriptions_probe_due(now=start + timedelta(minutes=1))
    relay_pending(batch_size=10)
    token = uuid.uuid4()
    (claimed,) = claim_due(batch_size=10, token=token)
    now = timezone.now()

    record_outcomes(
        [decide(claimed, DeliveryResult(started_at=now, duration_ms=2, status_code=204), now=now)], token=token
    )

    (notice,) = notices(organization, "system.subscription.recovered")
    assert (notice["active"], notice["probe"], notice["probes_sent"]) == (False, True, 1)
    target.refresh_from_db()
    assert (target.active, target.probe_next_at) == (False, None)  # its owner re-enables it; probing stopped
    # The episode's run stays, and with it the retention hold on what the subscription missed.
    assert (target.consecutive_failures, target.failing_since) == (20, failing_since)
    assert subscriptions_probe_due(now=start + timedelta(days=1)) == 0


def test_re_enabling_ends_the_episode_and_the_probing(organization) -> None:
    target = disabled(organization, probe=True)
    Subscription.objects.filter(pk=target.pk).update(failing_notified_at=timezone.now(), probes_sent=3)
    target.refresh_from_db()

    subscription_update(subscription=target, active=True)

    target.refresh_from_db()
    assert (target.active, target.failing_notified_at, target.probe_next_at, target.probes_sent) == (
        True, None, None, 0,
    )  # fmt: skip


def test_opting_in_while_disabled_probes_at_the_next_pass_and_opting_out_stops_it(organization) -> None:
    target = disabled(organization, probe=False)

    before = timezone.now()
    subscription_update(subscription=target, probe_when_disabled=True)
    target.refresh_from_db()
    assert target.probe_next_at is not None and before <= target.probe_next_at <= timezone.now()

    subscription_update(subscription=target, probe_when_disabled=False)
    target.refresh_from_db()
    assert target.probe_next_at is None


def test_opting_in_while_active_schedules_nothing_until_disabled(organization) -> None:
    target = subscription(organization)

    subscription_update(subscription=target, probe_when_disabled=True)

    target.refresh_from_db()
    assert (target.probe_when_disabled, target.probe_next_at) == (True, None)
