"""The statements prepared on the test's database connection (``sapien/core/prepared.py``), as PostgreSQL lists them."""

from django.db import connection


def prepared_statements(marker: str) -> list[tuple[str, list[str]]]:
    """The name and parameter types of each statement prepared on this connection whose text has ``marker``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, parameter_types::text[] FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{marker}%"]
        )
        return [(name, types) for name, types in cursor.fetchall()]
