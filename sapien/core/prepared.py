"""Prepared statements for the few hot statements whose planning costs as much as their execution.

Django's cursors bind parameters on the client, so PostgreSQL parses and plans every statement anew. A
cursor from ``prepared_cursor()`` binds on the server and prepares what it executes on its connection (once
per connection and statement text, kept by psycopg): after five runs PostgreSQL settles on a generic plan
when it costs no more than the custom ones, and planning is gone. Queries are counted and logged as any.

Behind a connection pooler in transaction mode, prepared statements need one that tracks them (PgBouncer
1.21 and later, ``max_prepared_statements``).
"""

from typing import Any, Self, cast

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper

# psycopg prepares a statement of its own accord after this many runs: never, but for these cursors' (Django's own
# cursors bind on the client, and never prepare anything).
NEVER_BY_ITSELF = 2**31 - 1


class _PreparingCursor(psycopg.Cursor[Any]):
    """Binds on the server, as Django's ``ServerBindingCursor``, and prepares every statement it executes."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Self:
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor() -> CursorWrapper:
    """A cursor of the default connection whose statements are prepared on the server (see above)."""
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw_connection = cast(psycopg.Connection[Any], connection.connection)
    if raw_connection.prepare_threshold is None:  # Django's default: psycopg then prepares nothing at all
        raw_connection.prepare_threshold = NEVER_BY_ITSELF
    raw = cast(Any, _PreparingCursor(raw_connection))
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
