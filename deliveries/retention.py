"""Purging what is older than ``ESL_RETENTION_HOURS``, in bounded batches with short transactions.

A delivery still pending when its event leaves the retention window is first
marked failed (visible in the log, with the reason), never silently dropped;
it is purged on a later pass, once it has been failed for ``FAILED_VISIBLE``.
Events the relay has not fanned out yet are never purged.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from sapien.events.selectors import retention_start

logger = logging.getLogger(__name__)

BATCH = 1000
FAILED_VISIBLE = timedelta(hours=1)

EXPIRE_PENDING_SQL = """
UPDATE deliveries_delivery SET status = 'failed', completed_at = %(now)s, updated_at = %(now)s,
    last_error = 'retention expired before a successful attempt', claim_token = NULL, claimed_until = NULL
WHERE id IN (
    SELECT d.id FROM deliveries_delivery d JOIN events_event e ON e.id = d.event_id
    WHERE d.status = 'pending' AND e.created_at < %(cutoff)s
    LIMIT %(batch)s FOR UPDATE OF d SKIP LOCKED
)
"""

# Events old enough, relayed, and without a delivery that is pending or only recently failed.
PURGEABLE_EVENTS = """
SELECT e.id FROM events_event e
WHERE e.created_at < %(cutoff)s AND e.relayed_at IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM deliveries_delivery d
    WHERE d.event_id = e.id AND (d.status = 'pending' OR d.completed_at > %(visible_since)s)
  )
ORDER BY e.created_at
LIMIT %(batch)s
FOR UPDATE OF e SKIP LOCKED
"""


@dataclass
class PurgeResult:
    expired_pending: int = 0
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    blobs: int = 0
    quota_windows: int = 0
    blob_paths: list[str] = field(default_factory=list, repr=False)


def purge_expired(*, now: datetime | None = None, batch: int = BATCH, max_batches: int = 1000) -> PurgeResult:
    now = now or timezone.now()
    cutoff = retention_start(now)
    params: dict[str, Any] = {"now": now, "cutoff": cutoff, "batch": batch, "visible_since": now - FAILED_VISIBLE}
    result = PurgeResult()
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(EXPIRE_PENDING_SQL, params)
            expired = cursor.rowcount
        result.expired_pending += expired
        if expired < batch:
            break
    if result.expired_pending:
        logger.warning(
            "%s pending deliveries reached the end of retention and were marked failed.", result.expired_pending
        )
    for _ in range(max_batches):
        if not _purge_batch(params, result):
            break
    for path in result.blob_paths:
        default_storage.delete(path)
    # Quota windows older than the retention window are of no further use.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM events_quotausage WHERE window_start < %s", [cutoff - timedelta(hours=1)])
        result.quota_windows = cursor.rowcount
    return result


def _purge_batch(params: dict[str, Any], result: PurgeResult) -> int:
    """Deletes one batch of events with their deliveries, attempts and blobs, in one short transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS purge_ids (id uuid) ON COMMIT DELETE ROWS")
        cursor.execute(f"INSERT INTO purge_ids {PURGEABLE_EVENTS}", params)
        events = cursor.rowcount
        if not events:
            return 0
        cursor.execute(
            "DELETE FROM deliveries_deliveryattempt WHERE delivery_id IN ("
            " SELECT d.id FROM deliveries_delivery d JOIN purge_ids p ON p.id = d.event_id)"
        )
        result.attempts += cursor.rowcount
        cursor.execute("DELETE FROM deliveries_delivery WHERE event_id IN (SELECT id FROM purge_ids)")
        result.deliveries += cursor.rowcount
        cursor.execute("DELETE FROM deliveries_blob WHERE event_id IN (SELECT id FROM purge_ids) RETURNING path")
        paths = [row[0] for row in cursor.fetchall()]
        result.blobs += len(paths)
        result.blob_paths.extend(paths)
        cursor.execute("DELETE FROM events_event WHERE id IN (SELECT id FROM purge_ids)")
        result.events += cursor.rowcount
    return events
