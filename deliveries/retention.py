"""Retention: history older than ``ESL_RETENTION_HOURS`` goes a whole day partition at a time.

Each pass (beat, every 5 minutes) first keeps the partitions ready (``partitions.py``), then:

- marks failed every delivery still pending whose event left the retention window (visible in the
  log, with the reason, never silently dropped);
- drops each day partition that ended before the window, once ``FAILED_VISIBLE`` has passed as
  well, unless it holds an event the relay has not fanned out yet, or events a failing or disabled
  subscription missed (``replay_hold_start``): those stay replayable until it recovers, is re-enabled
  with its replay, or is deleted.

Dropping a day costs the same whatever it holds; nothing is deleted row by row but the blob rows of
the day's events, quota windows past use and ``Idempotency-Key`` answers past ``ESL_IDEMPOTENCY_HOURS``.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from deliveries.counters import counter_parameters, expiry_counts_sql
from deliveries.health import health_hours_purge
from deliveries.models import DeliveryStatus
from deliveries.partitions import EVENTS, history_day_drop, history_days, history_partitions_ensure
from deliveries.retry import longest_retry_chain
from sapien.core.idempotency import purge_expired_keys
from sapien.core.partitions import DayPartition
from sapien.events.quota import WINDOW
from sapien.events.selectors import retention_start
from subscriptions.models import Subscription

logger = logging.getLogger(__name__)

FAILED_VISIBLE = timedelta(hours=1)
RETENTION_EXPIRED = "retention expired before a successful attempt"

EXPIRE_PENDING_SQL = f"""
WITH expired AS (
    UPDATE deliveries_delivery SET status = '{DeliveryStatus.FAILED}', completed_at = %(now)s, updated_at = %(now)s,
        last_error = '{RETENTION_EXPIRED}', claim_token = NULL, claimed_until = NULL
    WHERE status = '{DeliveryStatus.PENDING}' AND event_created_at < %(cutoff)s
    RETURNING organization_id
), counted AS (  -- finished deliveries, as /metrics counts them (deliveries/counters.py)
    {expiry_counts_sql(expired="expired")}
)
SELECT count(*) FROM expired
"""


@dataclass
class PurgeResult:
    expired_pending: int = 0
    days: int = 0
    blobs: int = 0
    quota_windows: int = 0
    health_hours: int = 0
    idempotency_keys: int = 0
    partitions_created: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # day -> why it is kept past retention


def longest_delivery_life() -> timedelta:
    """The longest a delivery can stay pending: deferred by its organization's quota, then its whole retry chain."""
    return WINDOW + longest_retry_chain()


def check_retention_outlasts_retries() -> None:
    """Refuses a retention shorter than a delivery's longest life: retention would mark deliveries failed
    while their retries still run."""
    needed = longest_delivery_life()
    if timedelta(hours=settings.ESL_RETENTION_HOURS) < needed:
        raise ImproperlyConfigured(
            f"ESL_RETENTION_HOURS ({settings.ESL_RETENTION_HOURS:g}) must be at least "
            f"{needed.total_seconds() / 3600:.1f} hours: the quota window plus the longest retry chain that "
            "ESL_RETRY_DELAY_MS and ESL_RETRY_MAX_DELAY_MS allow."
        )


def replay_hold_margin() -> timedelta:
    """How long before its first failure ended a failing subscription's missed events may start: one
    delivery's longest life, and an hour more."""
    return longest_delivery_life() + timedelta(hours=1)


def replay_hold_start() -> datetime | None:
    """From when a failing or disabled subscription's missed events must stay: its first failure (or, if
    it was disabled by hand, its disabling), less ``replay_hold_margin()``; ``None`` when none holds any."""
    start = (
        Subscription.objects.filter(Q(failing_since__isnull=False) | Q(active=False, disabled_at__isnull=False))
        .annotate(missed_since=Coalesce("failing_since", "disabled_at"))
        .order_by("missed_since")
        .values_list("missed_since", flat=True)
        .first()
    )
    return None if start is None else start - replay_hold_margin()


def oldest_unrelayed() -> datetime | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(created_at) FROM events_outbox")  # its primary key leads with created_at
        row = cursor.fetchone()
    return row[0] if row else None


def purge_expired(*, now: datetime | None = None) -> PurgeResult:
    now = now or timezone.now()
    cutoff = retention_start(now)
    result = PurgeResult()
    try:
        result.partitions_created = history_partitions_ensure(now=now)
    except OperationalError:  # a long reader holds a table: three days of partitions are ready ahead, try next pass
        logger.warning("Could not create the history's partitions ahead (a table was in use); the next pass will.")
    with transaction.atomic(), connection.cursor() as cursor:
        counting = counter_parameters(per_organization=settings.ESL_METRICS_PER_ORGANIZATION)
        cursor.execute(EXPIRE_PENDING_SQL, {"now": now, "cutoff": cutoff, **counting})
        row = cursor.fetchone()
        result.expired_pending = row[0] if row else 0
    if result.expired_pending:
        logger.warning(
            "%s pending deliveries reached the end of retention and were marked failed.", result.expired_pending
        )
    unrelayed, hold = oldest_unrelayed(), replay_hold_start()
    for day in history_days():
        end = DayPartition(EVENTS.name, day).end
        if end > cutoff - FAILED_VISIBLE:
            break
        if unrelayed is not None and end > unrelayed:
            result.kept[day.isoformat()] = "it holds events the relay has not fanned out yet"
        elif hold is not None and end > hold:
            result.kept[day.isoformat()] = "a failing or disabled subscription missed events of it"
        else:
            try:
                paths = history_day_drop(day)
            except OperationalError:  # a session holds one of the tables: never queue behind it
                result.kept[day.isoformat()] = "its tables were in use; the next pass drops it"
                continue
            for path in paths:
                default_storage.delete(path)
            result.days += 1
            result.blobs += len(paths)
    if result.kept:
        logger.warning("History kept past retention: %s", result.kept)
    with transaction.atomic(), connection.cursor() as cursor:  # quota windows past use
        cursor.execute("DELETE FROM events_quotausage WHERE window_start < %s", [cutoff - timedelta(hours=1)])
        result.quota_windows = cursor.rowcount
    result.health_hours = health_hours_purge(now=now)  # subscriptions' hours past what /stats reads
    result.idempotency_keys = purge_expired_keys(now=now)  # answers past ESL_IDEMPOTENCY_HOURS
    return result
