"""bench/writes.py counts what PostgreSQL wrote: known inserts, HOT and non-HOT updates and deletes into a partitioned
table of our own come out exactly, folded from its partitions; the bench's own statement is taken out."""

import uuid
from collections.abc import Iterator
from functools import partial

import psycopg
import pytest

from bench.results import TableWrites
from bench.writes import OTHERS, own_statement, settled_snapshot, writes_between
from tests.support.processes import database_url

# The writer here is the reading session itself, which flushes its counts at the end of a statement once a second
# has passed since it last did (and the polls end statements): a quiet spell of 1.5 s covers it. Other sessions
# may hold theirs 10 s longer, which is why the bench waits for 11 s.
settled = partial(settled_snapshot, quiet=1.5)


@pytest.fixture
def conn(db) -> Iterator[psycopg.Connection]:
    """A session of our own (autocommit) on the test database, with a schema of our own dropped afterwards.

    Two tables: ``measured`` partitioned by day into two partitions, each with three indexes (its primary key, one
    on ``v``, one partial); ``plain`` with its primary key only.
    """
    schema = f"bench_writes_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url(), autocommit=True) as session:
        session.execute(f"CREATE SCHEMA {schema}")
        session.execute(f"SET search_path TO {schema}")
        session.execute("CREATE TABLE measured (id int, day date, v int, note text, PRIMARY KEY (id, day))"
                        " PARTITION BY RANGE (day)")  # fmt: skip
        session.execute(
            "CREATE TABLE measured_1 PARTITION OF measured FOR VALUES FROM ('2024-01-01') TO ('2024-01-02')"
        )
        session.execute(
            "CREATE TABLE measured_2 PARTITION OF measured FOR VALUES FROM ('2024-01-02') TO ('2024-01-03')"
        )
        session.execute("CREATE INDEX ON measured (v)")
        session.execute("CREATE INDEX ON measured (day) WHERE v < 0")
        session.execute("CREATE TABLE plain (id int PRIMARY KEY)")
        try:
            yield session
        finally:
            session.execute(f"DROP SCHEMA {schema} CASCADE")


def test_writes_between_counts_rows_index_entries_and_hot_updates_folded_from_partitions(conn) -> None:
    before = settled(conn)

    conn.execute("INSERT INTO measured SELECT i, DATE '2024-01-01' + (i % 2), i, 'x' FROM generate_series(1, 10) i")
    conn.execute("UPDATE measured SET note = 'changed' WHERE id <= 4")  # no indexed column: HOT
    conn.execute("UPDATE measured SET v = v + 100 WHERE id BETWEEN 5 AND 7")  # an indexed column: not HOT
    conn.execute("DELETE FROM measured WHERE id >= 9")
    conn.execute("INSERT INTO plain SELECT generate_series(1, 2)")
    after = settled(conn)
    writes = writes_between(before, after, deliveries=5)

    assert before.settled and after.settled
    assert writes.other_tables["measured"] == TableWrites(
        inserts=10, updates=7, hot_updates=4, deletes=2, rows=19, index_entries=(10 + 3) * 3, indexes=3,
        partial_indexes=1, index_entries_upper_bound=True,
    )  # fmt: skip
    assert writes.other_tables["plain"] == TableWrites(
        inserts=2, updates=0, hot_updates=0, deletes=0, rows=2, index_entries=2, indexes=1, partial_indexes=0,
        index_entries_upper_bound=False,
    )  # fmt: skip
    assert set(writes.other_tables) == {"measured", "plain"}  # nothing else was written
    assert writes.tables[OTHERS].rows == 21
    assert {name: table.rows for name, table in writes.tables.items() if name != OTHERS} == {
        "events_event": 0, "deliveries_delivery": 0, "deliveries_deliveryattempt": 0,
    }  # fmt: skip
    assert (writes.rows, writes.index_entries, writes.updates, writes.hot_updates) == (21, 41, 7, 4)
    assert (writes.rows_per_delivery, writes.index_entries_per_delivery, writes.hot_share) == (4.2, 8.2, 0.571)
    assert writes.index_entries_upper_bound
    assert writes.wal_bytes > 0
    assert writes.wal_bytes_per_delivery == round(writes.wal_bytes / 5, 2)
    assert writes.subtracted == ""


def test_the_benchs_own_statement_is_taken_out_of_the_figures(conn) -> None:
    conn.execute("INSERT INTO measured SELECT i, DATE '2024-01-01', i, 'x' FROM generate_series(1, 6) i")
    before = settled(conn)

    row, own = own_statement(conn, "the release", "WITH moved AS (UPDATE measured SET v = -v WHERE id <= 3"
                             " RETURNING 1) SELECT count(*) FROM moved")  # fmt: skip
    conn.execute("INSERT INTO plain SELECT generate_series(1, 2)")
    after = settled(conn)
    writes = writes_between(before, after, deliveries=2, own=own)

    assert row == (3,)
    assert sorted((c.upd, c.hot) for c in own.counts.values()) == [(3, 0)]  # one partition, three non-HOT updates
    assert own.wal_bytes > 0
    assert "measured" not in writes.other_tables
    assert writes.rows == 2
    assert writes.subtracted == "the release"
    assert writes.wal_bytes == after.snapshot.wal_lsn - before.snapshot.wal_lsn - own.wal_bytes
