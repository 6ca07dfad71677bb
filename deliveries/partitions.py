"""The history tables' day partitions: kept ready ahead of time, dropped whole once past retention.

``events_event`` (by ``created_at``), ``deliveries_delivery`` and ``deliveries_deliveryattempt``
(by ``event_created_at``, their event's time) share their days: a day's events, deliveries and
attempts are created together and dropped together, in one short transaction, whatever they hold.
Beat maintains them every 5 minutes (``deliveries.purge_expired``) and the relay at start.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection, transaction

from sapien.core.partitions import (
    DAY,
    DAYS_AHEAD,
    DayPartition,
    day_partitions,
    default_partition_days,
    drop_partition,
    ensure_day_partitions,
    utc_day,
)


@dataclass(frozen=True)
class HistoryTable:
    name: str
    key: str  # the partition key: the event's time


# Dropped in this order: what refers to a row goes before it.
HISTORY_TABLES = (
    HistoryTable("deliveries_deliveryattempt", "event_created_at"),
    HistoryTable("deliveries_delivery", "event_created_at"),
    HistoryTable("events_event", "created_at"),
)
EVENTS = HISTORY_TABLES[-1]
LOCK_ORDER = ", ".join(table.name for table in reversed(HISTORY_TABLES))


def history_partitions_ensure(*, now: datetime) -> list[str]:
    """Creates the partitions of yesterday to ``DAYS_AHEAD`` days ahead in every history table, and of the
    days whose rows the default partitions caught (moving them in); returns the names created."""
    created: list[str] = []
    ready_from, ready_until = utc_day(now) - DAY, utc_day(now) + timedelta(days=DAYS_AHEAD)
    with transaction.atomic(), connection.cursor() as cursor:
        for table in HISTORY_TABLES:
            first, last = ready_from, ready_until
            caught = default_partition_days(cursor, table.name, table.key)
            if caught:
                first, last = min(first, caught[0]), max(last, caught[1])
            created += ensure_day_partitions(cursor, table.name, table.key, first, last)
    return created


def history_days() -> list[date]:
    """The days the history holds partitions for, oldest first."""
    with connection.cursor() as cursor:
        return [partition.day for partition in day_partitions(cursor, EVENTS.name)]


def history_day_drop(day: date) -> list[str]:
    """Drops one day of history (its attempts, deliveries, events, and its events' blob rows) in one
    transaction; returns the storage paths of the blobs, to delete once it committed. Raises
    ``OperationalError`` at once, having changed nothing, when another session holds one of the tables."""
    with transaction.atomic(), connection.cursor() as cursor:
        # A table with deferred foreign-key checks still queued in this transaction cannot be dropped: run them.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Dropping a partition takes its table exclusively. All three at once, in the order the relay and the
        # claim take them (events, then deliveries), and without waiting: a drop that queued behind a reader
        # would hold the tables it had, stall every query behind it, and could deadlock with the relay.
        cursor.execute(f"LOCK TABLE ONLY {LOCK_ORDER} IN ACCESS EXCLUSIVE MODE NOWAIT")
        events = DayPartition(EVENTS.name, day).name
        cursor.execute(f"DELETE FROM deliveries_blob b USING {events} e WHERE b.event_id = e.id RETURNING b.path")
        paths = [row[0] for row in cursor.fetchall()]
        for table in HISTORY_TABLES:
            drop_partition(cursor, DayPartition(table.name, day))
    return paths
