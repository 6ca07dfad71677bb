"""Set-based SQL that grows Sapien's history for ``--scale``: events, one delivery each, one attempt each.

Rows go into the real tables through their partitioned parents (so every index and every partition bound
applies), one ``INSERT … SELECT generate_series`` per day partition covered (at most ``CHUNK`` events per
statement), from ``SESSIONS`` sessions at once (different days), each with ``synchronous_commit`` off. One
statement writes all three tables: the events' ``RETURNING`` feeds the deliveries, whose ``RETURNING`` feeds the
attempts. While ``loading()``, the bench's own PostgreSQL checkpoints less often (``max_wal_size``), and it ends
with a ``CHECKPOINT``: what is measured next does not share the disk with the load's write-back.

What a row looks like: an event of a weighted mix of types (``TYPES``) with a ~0.5 KB envelope, already relayed;
a delivery of it to the one subscription, 90 % succeeded, 9 % failed and 1 % pending but not due for a day or more
(a retry far ahead); one attempt each (200, 500 or 503). Times are uniformly random within the range loaded, and
each statement writes its rows in time order, as the pipeline appends them: the indexes on time take them in
order (twice the rate of random order), and a page of the log reads neighbouring rows, as it would in production.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import psycopg

from bench.progress import log
from sapien.core.partitions import partition_name

CHUNK = 500_000  # events per statement: a day of a 10M history takes seven
SESSIONS = min(2, os.cpu_count() or 1)
LOADING_MAX_WAL_SIZE = "8GB"  # while loading (PostgreSQL's default, 1GB, checkpoints every ~20 s of it)
HISTORY_TABLES = ("events_event", "deliveries_delivery", "deliveries_deliveryattempt")
# 20 slots, so that ``n % 20`` picks a type: person.created 40 %, person.updated 30 %, pet.created 15 %, ...
TYPES = ["person.created"] * 8 + ["person.updated"] * 6 + ["pet.created"] * 3 + ["toy.updated"] * 2 + ["person.deleted"]
NOTES = "x" * 200

LOAD_SQL = """
WITH events AS (
    INSERT INTO events_event (id, organization_id, type, body, created_at, recipient_id)
    SELECT id, %(organization)s::uuid, type,
           '{"id":"' || id || '","type":"' || type || '","version":"1.0","timestamp":"'
           || to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
           || '","organization_id":"' || %(organization)s::text || '","data":{"id":"' || gen_random_uuid()
           || '","name":"Scale ' || n || '","email":"scale-' || n || '@example.com","notes":"' || %(notes)s::text
           || '"},"metadata":{"correlation_id":"req_scale_' || n || '","triggered_by":"bench","source":"api"}}',
           created_at, NULL
    FROM (SELECT gen_random_uuid() AS id, n, (%(types)s::text[])[1 + n %% 20] AS type,
                 %(start)s::timestamptz + random() * %(span)s::interval AS created_at
          FROM generate_series(1, %(rows)s::int) AS n ORDER BY created_at) AS generated
    RETURNING id, type, created_at
), deliveries AS (
    INSERT INTO deliveries_delivery (
        id, organization_id, event_id, event_created_at, event_type, subscription_id, status, attempt_count,
        next_attempt_at, last_status_code, last_error, created_at, updated_at, completed_at
    )
    SELECT gen_random_uuid(), %(organization)s::uuid, id, created_at, type, %(subscription)s::uuid, status, 1,
           CASE WHEN status = 'pending' THEN now() + interval '1 day' + r * interval '1 day' END,
           CASE status WHEN 'succeeded' THEN 200 WHEN 'failed' THEN 500 ELSE 503 END,
           CASE status WHEN 'succeeded' THEN '' WHEN 'failed' THEN 'HTTP 500' ELSE 'HTTP 503' END,
           created_at + interval '30 milliseconds', created_at + interval '1 second',
           CASE WHEN status <> 'pending' THEN created_at + interval '1 second' END
    FROM (SELECT *, CASE WHEN r < 0.90 THEN 'succeeded' WHEN r < 0.99 THEN 'failed' ELSE 'pending' END AS status
          FROM (SELECT *, random() AS r FROM events) AS drawn) AS decided
    RETURNING id, event_created_at, status, last_status_code
)
INSERT INTO deliveries_deliveryattempt (
    delivery_id, event_created_at, number, started_at, duration_ms, status_code, succeeded, error, response_excerpt
)
SELECT id, event_created_at, 1, event_created_at + interval '50 milliseconds', 5 + (random() * 250)::int,
       last_status_code, status = 'succeeded',
       CASE WHEN status = 'succeeded' THEN '' ELSE 'HTTP ' || last_status_code END,
       CASE WHEN status = 'succeeded' THEN 'ok' ELSE '{"error":"try again later"}' END
FROM deliveries
"""

HISTORY_MB_SQL = """
SELECT i.inhparent::regclass::text, sum(pg_total_relation_size(i.inhrelid)) / 1048576.0
FROM pg_inherits i WHERE i.inhparent = ANY(%(tables)s::regclass[]) GROUP BY 1
"""


def day_pieces(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at each UTC midnight: one piece per day partition it covers."""
    pieces, cursor = [], start.astimezone(UTC)
    while cursor < end:
        midnight = datetime(cursor.year, cursor.month, cursor.day, tzinfo=UTC) + timedelta(days=1)
        pieces.append((cursor, min(midnight, end)))
        cursor = midnight
    return pieces


def spread(rows: int, pieces: list[tuple[datetime, datetime]]) -> list[int]:
    """``rows`` shared among the pieces in proportion to their length (the last takes the rounding)."""
    total = sum((piece_end - piece_start).total_seconds() for piece_start, piece_end in pieces)
    shares = [int(rows * (piece_end - piece_start).total_seconds() / total) for piece_start, piece_end in pieces]
    shares[-1] += rows - sum(shares)
    return shares


class HistoryLoader:
    """Writes history rows for one organization and subscription; the day partitions must exist already
    (rows of a day without one would land in the default partition)."""

    def __init__(self, db_url: str, organization_id: str, subscription_id: str) -> None:
        self.db_url = db_url
        self.organization_id = organization_id
        self.subscription_id = subscription_id
        self.checkpoint_seconds = 0.0  # the CHECKPOINT that ended the last ``loading()``

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        """Fewer checkpoints while inside (the bench's own server: ``ALTER SYSTEM``), the default again after,
        then a ``CHECKPOINT``, so that the load's dirty pages are written before anything is timed."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET max_wal_size = '{LOADING_MAX_WAL_SIZE}'")
            conn.execute("SELECT pg_reload_conf()")
            try:
                yield
            finally:
                conn.execute("ALTER SYSTEM RESET max_wal_size")
                conn.execute("SELECT pg_reload_conf()")
                self.checkpoint_seconds = self.checkpoint(conn)

    @staticmethod
    def checkpoint(conn: psycopg.Connection[tuple[object, ...]]) -> float:
        started = time.monotonic()
        conn.execute("CHECKPOINT")
        return time.monotonic() - started

    def load(self, start: datetime, end: datetime, rows: int, label: str) -> float:
        """Adds ``rows`` deliveries (with their events and attempts) at random times in ``[start, end)``;
        returns the seconds it took."""
        pieces = day_pieces(start, end)
        statements = [
            (piece_start, piece_end, min(CHUNK, piece_rows - offset))
            for (piece_start, piece_end), piece_rows in zip(pieces, spread(rows, pieces), strict=True)
            for offset in range(0, piece_rows, CHUNK)
        ]
        statements.sort(key=lambda statement: -statement[2])  # the largest first: the sessions end together
        started, done, lock = time.monotonic(), [0], threading.Lock()

        def session(share: list[tuple[datetime, datetime, int]]) -> None:
            with psycopg.connect(self.db_url, autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")  # this session only: a crash could lose its last commits
                for piece_start, piece_end, count in share:
                    conn.execute(LOAD_SQL, {
                        "organization": self.organization_id, "subscription": self.subscription_id, "types": TYPES,
                        "notes": NOTES, "start": piece_start, "span": piece_end - piece_start, "rows": count,
                    })  # fmt: skip
                    with lock:
                        done[0] += count
                        log(f"    {label}: {done[0]:,} of {rows:,} ({time.monotonic() - started:.0f} s)")

        with ThreadPoolExecutor(SESSIONS) as pool:
            for finished in [pool.submit(session, statements[index::SESSIONS]) for index in range(SESSIONS)]:
                finished.result()
        return time.monotonic() - started

    def vacuum_analyze(self, day: date | None = None) -> float:
        """``VACUUM (ANALYZE)`` of the history (or of one day's partitions), as autovacuum leaves settled days:
        visibility map set, statistics fresh, and no autovacuum still busy with them. Returns the seconds it took."""
        tables = [partition_name(table, day) for table in HISTORY_TABLES] if day else HISTORY_TABLES
        started = time.monotonic()
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
        return time.monotonic() - started

    def history_mb(self) -> dict[str, float]:
        """Each history table's partitions with their indexes and TOAST, in MB."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            rows = conn.execute(HISTORY_MB_SQL, {"tables": list(HISTORY_TABLES)}).fetchall()
        return {str(table): round(float(mb), 1) for table, mb in rows}
