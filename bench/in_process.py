"""What the in-process benchmarks (``bench.sendpath``, ``bench.filters``) share: a database and Django, migrated."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from bench.procs import free_port
from bench.progress import log


@contextlib.contextmanager
def database(work: Path, name: str) -> Iterator[tuple[str, str]]:
    """(URL, kind): ``DATABASE_URL`` when set, else an embedded PostgreSQL in ``work``, stopped on the way out."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given, "DATABASE_URL"
        return
    from sapien.embedded import start_postgres

    log(f"starting embedded PostgreSQL in {work}")
    postgres = start_postgres(data_dir=work / "postgres", port=free_port(), database=name)
    try:
        yield postgres.url, "embedded"
    finally:
        with contextlib.suppress(Exception):
            postgres.stop(timeout=20)


def setup_django(database_url: str, **environ: str) -> None:
    """Django against ``database_url``, migrated; wake-ups go to an in-memory broker nobody reads."""
    os.environ |= {
        "DATABASE_URL": database_url,
        "ESL_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",  # DEBUG would keep every query in memory
        **environ,
    }
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
    import django
    from django.core.management import call_command

    django.setup()
    log("migrating")
    call_command("migrate", verbosity=0, interactive=False)
