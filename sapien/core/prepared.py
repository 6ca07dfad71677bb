"""Prepared statements for the few hot statements whose planning costs more than their execution.

Django's cursors bind parameters on the client, so PostgreSQL parses and plans every statement anew. A
cursor from ``prepared_cursor()`` binds on the server and prepares what it executes on its connection (once
per connection and statement text, kept by psycopg): after five runs PostgreSQL settles on a generic plan
when it costs no more than the custom ones, and planning is gone. Queries are counted and logged as any.

Behind a connection pooler in transaction mode, prepared statements need one that tracks them (PgBouncer
1.21 and later, ``max_prepared_statements``).
"""

from typing import Any

from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper

# psycopg prepares a statement of its own accord after this many runs: never, but for these cursors' (Django's own
# cursors bind on the client, and never prepare anything).
NEVER_BY_ITSELF = 2**31 - 1


class _PreparingCursor(ServerBindingCursor):
    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None):  # type: ignore[no-untyped-def]
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor() -> CursorWrapper:
    """A cursor of the default connection whose statements are prepared on the server (see above)."""
    connection.ensure_connection()
    connection.validate_thread_sharing()
    if connection.connection.prepare_threshold is None:  # Django's default: psycopg then prepares nothing at all
        connection.connection.prepare_threshold = NEVER_BY_ITSELF
    raw = _PreparingCursor(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
