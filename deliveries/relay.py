"""The relay: fans outbox events out into deliveries, in set-based SQL.

One short transaction per batch: claim unrelayed events with ``FOR UPDATE SKIP
LOCKED`` (marking them relayed), count them against their organization's hourly
quota, and insert one delivery per matching subscription (the unique constraint
makes it idempotent). Deliveries of events past the quota are due at the next
window instead of now. Several relays can run at once: each takes rows the
others have not locked.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from deliveries.wakeups import wake_delivery_workers, wakeups_for
from sapien.events.catalog import patterns_match_sql
from sapien.events.envelope import isoformat_z
from sapien.events.outbox import record_event
from sapien.events.quota import WARNING_SHARE, WINDOW, Counted, count_events, is_counted, window_start

CLAIM_SQL = """
UPDATE events_event SET relayed_at = now()
WHERE id IN (
    SELECT id FROM events_event
    WHERE relayed_at IS NULL
    ORDER BY created_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, organization_id, type, created_at
"""

FAN_OUT_SQL = """
INSERT INTO deliveries_delivery (
    id, organization_id, event_id, subscription_id, status, attempt_count,
    next_attempt_at, last_error, created_at, updated_at
)
SELECT gen_random_uuid(), e.organization_id, e.id, s.id, 'pending', 0,
       greatest(now(), v.not_before), '', now(), now()
FROM unnest(%(ids)s::uuid[], %(not_before)s::timestamptz[]) AS v(id, not_before)
JOIN events_event e ON e.id = v.id
JOIN subscriptions_subscription s ON s.organization_id = e.organization_id
WHERE CASE
    WHEN e.recipient_id IS NOT NULL THEN s.id = e.recipient_id
    ELSE s.active AND {matches}
END
ON CONFLICT (event_id, subscription_id) DO NOTHING
""".format(matches=patterns_match_sql("s.events", "e.type"))


@dataclass(frozen=True)
class RelayBatch:
    events: int
    deliveries: int


@dataclass(frozen=True)
class ClaimedEvent:
    id: Any
    organization_id: Any
    type: str
    created_at: datetime


def relay_batch(*, batch_size: int) -> RelayBatch:
    """Relays one batch in its own short transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, {"batch": batch_size})
        claimed = sorted((ClaimedEvent(*row) for row in cursor.fetchall()), key=lambda e: e.created_at)
        if not claimed:
            return RelayBatch(events=0, deliveries=0)
        not_before = apply_quota(claimed)
        cursor.execute(
            FAN_OUT_SQL, {"ids": [e.id for e in claimed], "not_before": [not_before.get(e.id) for e in claimed]}
        )
        return RelayBatch(events=len(claimed), deliveries=cursor.rowcount)


def apply_quota(claimed: list[ClaimedEvent]) -> dict[Any, datetime]:
    """Counts the batch against each organization's window; returns when held-back events may be delivered."""
    groups: dict[tuple[Any, datetime], list[ClaimedEvent]] = defaultdict(list)
    for event in claimed:
        if is_counted(event.type):
            groups[(event.organization_id, window_start(event.created_at))].append(event)
    not_before: dict[Any, datetime] = {}
    for counted in count_events({key: len(events) for key, events in groups.items()}):
        window_events = groups[(counted.organization_id, counted.window_start)]
        for ordinal, event in enumerate(window_events, start=counted.before + 1):
            if ordinal > counted.limit:
                not_before[event.id] = counted.window_start + WINDOW
        announce_thresholds(counted)
    return not_before


def announce_thresholds(counted: Counted) -> None:
    """``system.rate_limit.warning`` at 80 % and ``…exceeded`` at 100 %: once per window, when crossed."""
    warning_at = math.ceil(counted.limit * WARNING_SHARE)
    window = {
        "limit": counted.limit,
        "used": counted.after,
        "window_start": isoformat_z(counted.window_start),
        "window_end": isoformat_z(counted.window_start + WINDOW),
    }
    if counted.before < warning_at <= counted.after:
        record_event(
            organization_id=counted.organization_id,
            event_type="system.rate_limit.warning",
            data={**window, "threshold_percent": 80},
        )
    if counted.before < counted.limit <= counted.after:
        record_event(
            organization_id=counted.organization_id,
            event_type="system.rate_limit.exceeded",
            data={**window, "threshold_percent": 100, "deliveries_resume_at": window["window_end"]},
        )


def relay_and_wake_workers() -> RelayBatch:
    """Relays what is pending and wakes enough workers for the deliveries it made."""
    result = relay_pending(batch_size=settings.ESL_RELAY_BATCH_SIZE)
    if result.deliveries:
        wake_delivery_workers(wakeups_for(result.deliveries))
    return result


def relay_pending(*, batch_size: int, max_batches: int = 1000) -> RelayBatch:
    """Relays until the outbox is empty (or ``max_batches`` were done); returns the totals."""
    events = deliveries = 0
    for _ in range(max_batches):
        batch = relay_batch(batch_size=batch_size)
        events += batch.events
        deliveries += batch.deliveries
        if batch.events < batch_size:
            break
    return RelayBatch(events=events, deliveries=deliveries)
