"""Rows, index entries and WAL that PostgreSQL wrote during a phase, in all and per delivery.

Read around the phase from the server's own counters:

- ``pg_stat_all_tables``: ``n_tup_ins``, ``n_tup_upd``, ``n_tup_hot_upd``, ``n_tup_del`` of every table, the day
  partitions folded into their partitioned table (``pg_inherits``) and TOAST tables into their owner;
- ``pg_index``: the indexes of each partition (partial ones counted apart);
- ``pg_current_wal_insert_lsn()``: the WAL the whole server wrote, exact; ``pg_stat_wal`` for its records and
  full-page images.

The counters lag: since PostgreSQL 15 a backend keeps its counts and flushes them when a transaction ends, at most
once a second; counts it holds when it goes idle are flushed 10 s later (``PGSTAT_IDLE_INTERVAL``), and
``pg_stat_force_next_flush()`` acts on its own session only. So a reading polls until they have not changed for
``SETTLE_SECONDS`` (more than those 10 s), and keeps the WAL position of the first poll of that quiet spell: it
includes every write the counters show, and not the background's WAL while we waited. ``Writes.settled`` says
whether they went quiet within ``SETTLE_TIMEOUT_SECONDS``.

Arithmetic (``writes_between``): rows = inserts + updates + deletes. Index entries are estimated: an insert and a
non-HOT update add one to every index of their partition; a delete adds none (vacuum removes entries later). A
partial index gets an entry only when the row matches its predicate, so a table with one gives an upper bound.
WAL is the server's: the bench's PostgreSQL is its own (bench/stack.py, ``sapien.embedded`` in a temporary
directory) and its other databases are idle during a phase, but autovacuum and the full-page images that follow a
checkpoint count, as part of what the writes cost.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.progress import log
from bench.results import TableWrites, Writes

SETTLE_SECONDS = 11.0  # PostgreSQL's PGSTAT_IDLE_INTERVAL (10 s), and a margin
SETTLE_TIMEOUT_SECONDS = 45.0
POLL_SECONDS = 0.2

# The tables printed on their own; every other table's writes are summed as "others".
HOT_TABLES = ("events_event", "deliveries_delivery", "deliveries_deliveryattempt")
OTHERS = "others"

# Every partition (and TOAST table) of every user table, with its top table, its counters and its indexes.
COUNTERS_SQL = """
WITH RECURSIVE tree AS (
    SELECT c.oid AS relid, c.oid AS top
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
    UNION ALL
    SELECT i.inhrelid, tree.top FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid
), leaves AS (
    SELECT relid, top FROM tree
    UNION ALL
    SELECT c.reltoastrelid, tree.top FROM tree JOIN pg_class c ON c.oid = tree.relid WHERE c.reltoastrelid <> 0
)
SELECT leaves.relid::bigint, top.relname::text, s.n_tup_ins, s.n_tup_upd, s.n_tup_hot_upd, s.n_tup_del,
       (SELECT count(*) FROM pg_index x WHERE x.indrelid = leaves.relid),
       (SELECT count(*) FROM pg_index x WHERE x.indrelid = leaves.relid AND x.indpred IS NOT NULL)
FROM leaves
JOIN pg_class top ON top.oid = leaves.top
JOIN pg_stat_all_tables s ON s.relid = leaves.relid
"""

WAL_SQL = "SELECT pg_current_wal_insert_lsn()::text, wal_records, wal_fpi, wal_bytes::bigint FROM pg_stat_wal"

# The current transaction's own counts, not flushed yet: what a statement of the bench itself wrote.
XACT_SQL = """
SELECT relid::bigint, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_xact_all_tables
WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
"""


@dataclass(frozen=True)
class Counts:
    """One partition's counters."""

    ins: int = 0
    upd: int = 0
    hot: int = 0
    dele: int = 0

    def minus(self, other: Counts) -> Counts:
        return Counts(self.ins - other.ins, self.upd - other.upd, self.hot - other.hot, self.dele - other.dele)


@dataclass(frozen=True)
class Relation:
    table: str  # its top table: a partition's partitioned table, a TOAST table's owner
    indexes: int
    partial_indexes: int


@dataclass(frozen=True)
class Snapshot:
    counts: dict[int, Counts]  # relid -> counters
    relations: dict[int, Relation]
    wal_lsn: int  # bytes from the start of WAL
    wal_records: int
    wal_fpi: int

    def total(self) -> int:
        return sum(c.ins + c.upd + c.hot + c.dele for c in self.counts.values())


@dataclass(frozen=True)
class Reading:
    """A snapshot once the counters settled, how long that took and whether they did."""

    snapshot: Snapshot
    waited: float
    settled: bool


def lsn_bytes(lsn: str) -> int:
    """``16/B374D848`` -> its byte position."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """The counters as the server shows them now (``conn`` in autocommit: each read sees fresh counters)."""
    counts, relations = {}, {}
    for relid, table, ins, upd, hot, dele, indexes, partial in conn.execute(COUNTERS_SQL).fetchall():
        counts[relid] = Counts(ins, upd, hot, dele)
        relations[relid] = Relation(table=table, indexes=indexes, partial_indexes=partial)
    row = conn.execute(WAL_SQL).fetchone()
    assert row is not None
    return Snapshot(counts=counts, relations=relations, wal_lsn=lsn_bytes(row[0]), wal_records=row[1],
                    wal_fpi=row[2])  # fmt: skip


def settled_snapshot(conn: psycopg.Connection[Any], *, quiet: float = SETTLE_SECONDS,
                     timeout: float = SETTLE_TIMEOUT_SECONDS) -> Reading:  # fmt: skip
    """Polls until the table counters stay unchanged for ``quiet`` seconds; the first snapshot of that spell."""
    started = time.monotonic()
    first = snapshot(conn)
    quiet_since = time.monotonic()
    while True:
        time.sleep(POLL_SECONDS)
        now = snapshot(conn)
        if now.total() != first.total():
            first, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            return Reading(first, round(time.monotonic() - started, 2), True)
        if time.monotonic() - started >= timeout:
            return Reading(now, round(time.monotonic() - started, 2), False)


@dataclass(frozen=True)
class Own:
    """What a statement of the bench itself wrote, to be taken out of a phase's figures."""

    what: str
    counts: dict[int, Counts]
    wal_bytes: int


def own_statement(conn: psycopg.Connection[Any], what: str, sql: str, params: Any = None) -> tuple[Any, Own]:
    """Runs ``sql`` in a transaction of its own and counts what it wrote (``pg_stat_xact_all_tables``, read before
    the commit); its WAL is the WAL position's move around it, with nothing else due to write meanwhile.
    Returns its first row and the count."""
    start = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    with conn.transaction():
        row = conn.execute(sql, params).fetchone()
        counts = {relid: Counts(ins, upd, hot, dele) for relid, ins, upd, hot, dele in conn.execute(XACT_SQL)}
    end = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert start is not None and end is not None
    return row, Own(what=what, counts=counts, wal_bytes=lsn_bytes(end[0]) - lsn_bytes(start[0]))


def writes_between(before: Reading, after: Reading, *, deliveries: int, own: Own | None = None) -> Writes:
    """The arithmetic of the module docstring, from two readings; ``own`` is taken out first."""
    tables: dict[str, dict[str, int]] = {}
    partial_tables: set[str] = set()
    for relid, now in after.snapshot.counts.items():
        delta = now.minus(before.snapshot.counts.get(relid, Counts()))  # a partition made meanwhile started at 0
        if own is not None:
            delta = delta.minus(own.counts.get(relid, Counts()))
        relation = after.snapshot.relations[relid]
        sums = tables.setdefault(
            relation.table, dict.fromkeys(("ins", "upd", "hot", "dele", "entries", "idx", "part"), 0)
        )
        sums["ins"] += delta.ins
        sums["upd"] += delta.upd
        sums["hot"] += delta.hot
        sums["dele"] += delta.dele
        sums["entries"] += (delta.ins + delta.upd - delta.hot) * relation.indexes
        sums["idx"] = max(sums["idx"], relation.indexes)
        sums["part"] = max(sums["part"], relation.partial_indexes)
        if relation.partial_indexes and delta.ins + delta.upd - delta.hot:
            partial_tables.add(relation.table)
    every = {name: table_writes(sums, name in partial_tables) for name, sums in sorted(tables.items())}
    written = {name: value for name, value in every.items() if value.rows}
    others = {name: value for name, value in written.items() if name not in HOT_TABLES}
    grouped = {name: every.get(name, table_writes({}, False)) for name in HOT_TABLES}
    grouped[OTHERS] = sum_writes(list(others.values()))
    rows = sum(value.rows for value in written.values())
    entries = sum(value.index_entries for value in written.values())
    updates = sum(value.updates for value in written.values())
    hot = sum(value.hot_updates for value in written.values())
    wal = after.snapshot.wal_lsn - before.snapshot.wal_lsn - (own.wal_bytes if own else 0)

    def per(value: int) -> float | None:
        return round(value / deliveries, 2) if deliveries else None

    return Writes(
        deliveries=deliveries, rows=rows, index_entries=entries, index_entries_upper_bound=bool(partial_tables),
        updates=updates, hot_updates=hot, hot_share=round(hot / updates, 3) if updates else None, wal_bytes=wal,
        wal_records=after.snapshot.wal_records - before.snapshot.wal_records,
        wal_fpi=after.snapshot.wal_fpi - before.snapshot.wal_fpi,
        rows_per_delivery=per(rows), index_entries_per_delivery=per(entries), wal_bytes_per_delivery=per(wal),
        tables=grouped, other_tables=others, settle_seconds=round(before.waited + after.waited, 2),
        settled=before.settled and after.settled, subtracted=own.what if own else "",
    )  # fmt: skip


def table_writes(sums: Mapping[str, int], upper_bound: bool) -> TableWrites:
    ins, upd, dele = sums.get("ins", 0), sums.get("upd", 0), sums.get("dele", 0)
    return TableWrites(inserts=ins, updates=upd, hot_updates=sums.get("hot", 0), deletes=dele, rows=ins + upd + dele,
                       index_entries=sums.get("entries", 0), indexes=sums.get("idx", 0),
                       partial_indexes=sums.get("part", 0), index_entries_upper_bound=upper_bound)  # fmt: skip


def sum_writes(values: list[TableWrites]) -> TableWrites:
    return TableWrites(
        inserts=sum(v.inserts for v in values), updates=sum(v.updates for v in values),
        hot_updates=sum(v.hot_updates for v in values), deletes=sum(v.deletes for v in values),
        rows=sum(v.rows for v in values), index_entries=sum(v.index_entries for v in values),
        indexes=sum(v.indexes for v in values), partial_indexes=sum(v.partial_indexes for v in values),
        index_entries_upper_bound=any(v.index_entries_upper_bound for v in values),
    )  # fmt: skip


class WriteMeter:
    """Reads the counters of ``url``'s database (and the server's WAL) at the start of a phase, and again at
    ``stop()``; each reading waits for the counters to settle (at least ``SETTLE_SECONDS``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            self.before = settled_snapshot(conn)

    def stop(self, *, deliveries: int, own: Own | None = None) -> Writes:
        with psycopg.connect(self.url, autocommit=True) as conn:
            after = settled_snapshot(conn)
        if not (self.before.settled and after.settled):
            log(f"    write counters still moved after {SETTLE_TIMEOUT_SECONDS:.0f} s: the figures may miss writes")
        return writes_between(self.before, after, deliveries=deliveries, own=own)
