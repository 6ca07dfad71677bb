"""A subscription's failing episodes, told to its organization, and the half-open probe of a disabled one.

An episode starts with a delivery that ends failed and ends with a success (or a re-enabling by hand). Within
it, ``system.subscription.failing`` is recorded once, when the run of failed deliveries reaches
``ESL_FAILING_NOTICE_SHARE`` of ``ESL_DISABLE_AFTER_FAILURES``, and ``system.subscription.recovered`` once, when
a subscription that was told failing succeeds again. ``failing_notified_at`` is what makes each one once: it is
set with the first and cleared with the second, in the transaction that records the event.

A disabled subscription stays disabled until its owner re-enables it: re-enabling starts its deliveries again
and ends the retention hold on what it missed (``missed_while_disabled``), which only its owner can decide to
replay. With ``probe_when_disabled`` a disabled subscription is sent a signed ``system.ping`` at doubling
intervals (``ESL_PROBE_MIN_INTERVAL`` to ``ESL_PROBE_MAX_INTERVAL``), and the first one answered 2xx records
``system.subscription.recovered`` (``"probe": true``, ``"active": false``) and stops the probing.
"""

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from sapien.events.envelope import isoformat_z
from sapien.events.outbox import record_event
from subscriptions.models import Subscription

# The most subscriptions one pass of the probe sends a ping to: a pass's work is bounded, the rest wait for the next.
PROBE_BATCH_SIZE = 100


def failing_notice_threshold() -> int:
    """Deliveries failed in a row that make a subscription failing: the configured share of the disabling limit."""
    return max(1, math.ceil(settings.ESL_DISABLE_AFTER_FAILURES * settings.ESL_FAILING_NOTICE_SHARE))


def disables_at_earliest(subscription: Subscription) -> datetime | None:
    """When the disabling's period will have passed, if the run of failures goes on (None while none)."""
    if subscription.failing_since is None:
        return None
    return subscription.failing_since + timedelta(seconds=settings.ESL_DISABLE_AFTER_SECONDS)


def subscriptions_failing_announce(
    *, subscription_ids: Iterable[Any], now: datetime, reasons: Mapping[Any, str]
) -> int:
    """Records ``system.subscription.failing`` for each active subscription whose run of failures reached the
    threshold and that was not told yet in this episode. Must run inside the transaction that counted the run."""
    due = Subscription.objects.select_for_update().filter(
        id__in=list(subscription_ids), active=True, failing_notified_at__isnull=True,
        consecutive_failures__gte=failing_notice_threshold(),
    ).order_by("id")  # fmt: skip
    announced = 0
    for subscription in due:
        subscription.failing_notified_at = now
        subscription.save(update_fields=["failing_notified_at", "updated_at"])
        earliest = disables_at_earliest(subscription)
        record_event(
            organization_id=subscription.organization_id,
            event_type="system.subscription.failing",
            data={
                "subscription_id": str(subscription.id),
                "callback_url": subscription.callback_url,
                "consecutive_failures": subscription.consecutive_failures,
                "failing_since": isoformat_z(subscription.failing_since or now),
                "last_failure_reason": reasons.get(subscription.id, ""),
                "disable_after_failures": settings.ESL_DISABLE_AFTER_FAILURES,
                "disables_at_earliest": isoformat_z(earliest) if earliest else None,
            },
        )
        announced += 1
    return announced


@transaction.atomic
def subscription_health_recovered(*, subscription_ids: Iterable[Any], now: datetime) -> int:
    """Records ``system.subscription.recovered`` for each subscription of ``subscription_ids`` (each just had a
    success) that ends an episode: active, told failing and with no failure since; or disabled, and told failing
    or probing. Clears what made it due, so a second success announces nothing."""
    ended = (
        Subscription.objects.select_for_update()
        .filter(
            Q(active=True, consecutive_failures=0, failing_notified_at__isnull=False)
            | Q(active=False) & (Q(failing_notified_at__isnull=False) | Q(probe_next_at__isnull=False)),
            id__in=list(subscription_ids),
        )
        .order_by("id")
    )
    announced = 0
    for subscription in ended:
        probed = not subscription.active and subscription.probe_next_at is not None
        record_event(
            organization_id=subscription.organization_id,
            event_type="system.subscription.recovered",
            data={
                "subscription_id": str(subscription.id),
                "callback_url": subscription.callback_url,
                "active": subscription.active,
                "probe": probed,
                "probes_sent": subscription.probes_sent,
                "failing_notice_at": (
                    isoformat_z(subscription.failing_notified_at) if subscription.failing_notified_at else None
                ),
                "disabled_at": isoformat_z(subscription.disabled_at) if subscription.disabled_at else None,
                "recovered_at": isoformat_z(now),
            },
        )
        subscription.failing_notified_at = None
        subscription.probe_next_at = None
        subscription.save(update_fields=["failing_notified_at", "probe_next_at", "updated_at"])
        announced += 1
    return announced


def probe_interval(probes_sent: int) -> timedelta:
    """The wait before the next probe once ``probes_sent`` were sent (0: since the disabling):
    ``ESL_PROBE_MIN_INTERVAL`` doubled each time, at most ``ESL_PROBE_MAX_INTERVAL``."""
    first, longest = settings.ESL_PROBE_MIN_INTERVAL_SECONDS, settings.ESL_PROBE_MAX_INTERVAL_SECONDS
    return timedelta(seconds=min(first * 2 ** min(probes_sent, 32), max(longest, first)))


@transaction.atomic
def subscriptions_probe_due(*, now: datetime, limit: int = PROBE_BATCH_SIZE) -> int:
    """Records a ``system.ping`` addressed to each disabled subscription whose probe is due, at most ``limit``,
    oldest due first, and schedules its next. Concurrent passes skip one another's subscriptions."""
    due = list(
        Subscription.objects.select_for_update(skip_locked=True)
        .filter(active=False, probe_when_disabled=True, probe_next_at__lte=now)
        .order_by("probe_next_at")[:limit]
    )
    for subscription in due:
        subscription.probes_sent += 1
        subscription.probe_next_at = now + probe_interval(subscription.probes_sent)
        subscription.save(update_fields=["probes_sent", "probe_next_at", "updated_at"])
        record_event(
            organization_id=subscription.organization_id,
            event_type="system.ping",
            data={
                "subscription_id": str(subscription.id),
                "message": "Probe from Sapien ESL: this subscription is disabled; a 2xx answer tells its owner.",
                "probe": subscription.probes_sent,
            },
            recipient_id=subscription.id,
        )
    return len(due)


def probe_changes(subscription: Subscription, changes: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The probe state an update implies: none while active (re-enabling ends any episode and probing), a probe
    due now when a subscription Sapien disabled opts in, none when it opts out."""
    if changes.get("active") is True and not subscription.active:
        return {"failing_notified_at": None, "probe_next_at": None, "probes_sent": 0}
    opted = changes.get("probe_when_disabled")
    if opted is False:
        return {"probe_next_at": None}
    if opted is True and not subscription.active and subscription.disabled_at is not None:
        return {"probe_next_at": subscription.probe_next_at or now}
    return {}


def probe_on_disable(subscription: Subscription, *, now: datetime) -> list[str]:
    """Schedules the first probe of a subscription being disabled, if it opted in; returns the fields changed."""
    if not subscription.probe_when_disabled:
        return []
    subscription.probe_next_at = now + probe_interval(0)
    subscription.probes_sent = 0
    return ["probe_next_at", "probes_sent"]
