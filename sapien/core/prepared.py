"""Prepared statements for the few hot statements whose planning costs as much as their execution.

Django's cursors bind parameters on the client, so PostgreSQL parses and plans every statement anew. A
cursor from ``prepared_cursor()`` binds on the server and prepares what it executes on its connection (once
per connection and statement text, kept by psycopg), and every connection plans prepared statements
generically (``plan_cache_mode``, sapien/settings.py): planned once, partitions pruned when the plan starts.
(Left to itself, PostgreSQL would re-plan at every run a statement whose partitions its parameters prune.) So
a statement prepared here must read well under any parameters: by key, never through an index whose size
the parameters decide. Queries are counted and logged as any.

Behind a connection pooler in transaction mode, prepared statements need one that tracks them (PgBouncer
1.21 and later, ``max_prepared_statements``).
"""

from typing import Any, Self, cast

import psycopg
import psycopg._queries
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

# psycopg parses a statement's placeholders once and caches the result, but only for statements up to 4 KB: the
# claim, relay and record statements (9-12 KB, one per batch) were parsed anew at every run, a tenth of a
# millisecond each. The cache (128 statements) takes them all.
CACHED_STATEMENT_CHARS = 16 * 1024
psycopg._queries.MAX_CACHED_STATEMENT_LENGTH = max(psycopg._queries.MAX_CACHED_STATEMENT_LENGTH, CACHED_STATEMENT_CHARS)

# psycopg prepares a statement of its own accord after this many runs: never, but for these cursors' (Django's own
# cursors bind on the client, and never prepare anything).
NEVER_BY_ITSELF = 2**31 - 1


class _PreparingCursor(psycopg.Cursor[Any]):
    """Binds on the server, as Django's ``ServerBindingCursor``, and prepares every statement it executes."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Self:
        return super().execute(query, params, prepare=True, binary=binary)


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Logs a prepared statement's text as executed: psycopg keeps no bound query of a prepared execution, from
    which Django's own wrapper would log ``None``."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)


def prepared_cursor() -> CursorWrapper:
    """A cursor of the default connection whose statements are prepared on the server (see above). The connection
    is looked up once: each attribute read through Django's ``connection`` proxy looks it up again."""
    database = connections[DEFAULT_DB_ALIAS]
    database.ensure_connection()
    database.validate_thread_sharing()
    raw_connection: psycopg.Connection[Any] = database.connection
    if raw_connection.prepare_threshold is None:  # Django's default: psycopg then prepares nothing at all
        raw_connection.prepare_threshold = NEVER_BY_ITSELF
    raw = cast(Any, _PreparingCursor(raw_connection))
    return _PreparedDebugWrapper(raw, database) if database.queries_logged else database.make_cursor(raw)
