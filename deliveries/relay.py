"""The relay: fans outbox events out into deliveries, in set-based SQL.

One statement claims a batch of unrelayed events with ``FOR UPDATE SKIP LOCKED``,
inserts one delivery per matching subscription (the unique constraint makes it
idempotent) and marks the batch relayed. Several relays can run at once: each
takes rows the others have not locked.
"""

from dataclasses import dataclass

from django.db import connection, transaction

FAN_OUT_SQL = """
WITH claimed AS (
    SELECT id, organization_id, type, recipient_id
    FROM events_event
    WHERE relayed_at IS NULL
    ORDER BY created_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), fanned AS (
    INSERT INTO deliveries_delivery (
        id, organization_id, event_id, subscription_id, status, attempt_count,
        next_attempt_at, last_error, created_at, updated_at
    )
    SELECT gen_random_uuid(), e.organization_id, e.id, s.id, 'pending', 0, now(), '', now(), now()
    FROM claimed e
    JOIN subscriptions_subscription s ON s.organization_id = e.organization_id
    WHERE CASE
        WHEN e.recipient_id IS NOT NULL THEN s.id = e.recipient_id
        ELSE s.active AND EXISTS (
            SELECT 1 FROM unnest(s.events) AS pattern
            WHERE pattern = '*' OR pattern = e.type
               OR (right(pattern, 2) = '.*' AND starts_with(e.type, left(pattern, -1)))
        )
    END
    ON CONFLICT (event_id, subscription_id) DO NOTHING
    RETURNING 1
), marked AS (
    UPDATE events_event SET relayed_at = now()
    WHERE id IN (SELECT id FROM claimed)
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM fanned)
"""


@dataclass(frozen=True)
class RelayBatch:
    events: int
    deliveries: int


def relay_batch(*, batch_size: int) -> RelayBatch:
    """Relays one batch in its own short transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FAN_OUT_SQL, {"batch": batch_size})
        events, deliveries = cursor.fetchone()
    return RelayBatch(events=events, deliveries=deliveries)


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
