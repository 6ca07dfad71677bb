"""Daily range partitions of a table partitioned by time: naming, creating ahead, listing, dropping.

A partition holds one UTC day, ``<table>_p20261205`` for [2026-12-05, 2026-12-06). Every
partitioned table also has ``<table>_default``, the net for a row whose day has no partition
yet (creation fell behind): inserts never fail for want of one, and creating that day's
partition later moves such rows into it. Knows no table of its own: the history tables and
their keys are the callers' (``deliveries/partitions.py``, the migrations).

DDL here takes short locks and gives up rather than queue: ``LOCK_TIMEOUT`` bounds how long
it waits behind a long reader, during which new queries on the table would queue behind it; the
caller tries again later (beat's next pass).
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY = timedelta(days=1)
# Day partitions kept ready beyond today, so that a stopped beat leaves three days before rows reach the default.
# Not more: every statement that PostgreSQL cannot prune when planning (the claim, the record) plans each one.
DAYS_AHEAD = 3
LOCK_TIMEOUT = "200ms"
DAY_SUFFIX = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class DayPartition:
    table: str  # the partitioned table
    day: date

    @property
    def name(self) -> str:
        return partition_name(self.table, self.day)

    @property
    def start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + DAY


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_partition_name(table: str) -> str:
    return f"{table}_default"


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_partitions(cursor: Any, table: str) -> list[DayPartition]:
    """The table's day partitions, oldest first (the default partition is not one)."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [table],
    )
    prefix = f"{table}_p"
    days = sorted(
        datetime.strptime(name.removeprefix(prefix), "%Y%m%d").date()
        for (name,) in cursor.fetchall()
        if name.startswith(prefix) and DAY_SUFFIX.search(name)
    )
    return [DayPartition(table, day) for day in days]


def create_default_partition(cursor: Any, table: str) -> None:
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {default_partition_name(table)} PARTITION OF {table} DEFAULT")


def ensure_day_partitions(cursor: Any, table: str, key: str, first: date, last: date) -> list[str]:
    """Creates the missing day partitions from ``first`` to ``last`` (inclusive); returns their names.

    Each is built beside the table and attached (``SHARE UPDATE EXCLUSIVE`` on the table, not the
    ``ACCESS EXCLUSIVE`` of ``CREATE TABLE … PARTITION OF``), after moving into it any rows of its day
    that the default partition caught. Must run inside a transaction.
    """
    existing = {partition.day for partition in day_partitions(cursor, table)}
    created = []
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    day = first
    while day <= last:
        if day not in existing:
            partition = DayPartition(table, day)
            bounds = {"start": partition.start, "end": partition.end}
            cursor.execute(f"CREATE TABLE {partition.name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {default_partition_name(table)}"
                f" WHERE {key} >= %(start)s AND {key} < %(end)s RETURNING *)"
                f" INSERT INTO {partition.name} SELECT * FROM moved",
                bounds,
            )
            cursor.execute(
                f"ALTER TABLE {table} ATTACH PARTITION {partition.name} FOR VALUES FROM (%(start)s) TO (%(end)s)",
                bounds,
            )
            created.append(partition.name)
        day += DAY
    return created


def default_partition_days(cursor: Any, table: str, key: str) -> tuple[date, date] | None:
    """The first and last day of the rows the default partition caught, if it caught any."""
    cursor.execute(f"SELECT min({key}), max({key}) FROM {default_partition_name(table)}")
    row = cursor.fetchone()
    if not row or row[0] is None:
        return None
    return utc_day(row[0]), utc_day(row[1])


def drop_partition(cursor: Any, partition: DayPartition) -> None:
    """Drops one day partition with its rows: a moment's ``ACCESS EXCLUSIVE`` on the table, whatever it
    holds. Must run inside a transaction; waits at most ``LOCK_TIMEOUT`` for the lock, then raises."""
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cursor.execute(f"DROP TABLE IF EXISTS {partition.name}")
