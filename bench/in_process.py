"""What the in-process benchmarks (``bench.sendpath``, ``bench.filters``, ``bench.pass_cost``) share: a working
directory, a database and Django, migrated, the app's code of a revision against the bench's receiver, and where
their figures go."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.procs import HOST, ROOT, Proc, export_revision, free_port, stop_everything, wait_port
from bench.progress import log

RESULTS = ROOT / "bench" / "results"


@contextlib.contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed on the way out."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(work, 0o755)  # the embedded PostgreSQL runs as another user when we are root
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_results(figures: dict[str, Any], *, started_at: datetime, name: str) -> Path:
    """Writes a run's figures to bench/results/<started_at>-<name>.json; returns that path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}-{name}.json"
    path.write_text(json.dumps(figures, indent=2, default=str))
    return path


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

    import sapien.celery  # noqa: F401 - the Celery app (the memory broker), as the worker's entry point loads it

    django.setup()
    log("migrating")
    call_command("migrate", verbosity=0, interactive=False)


def start_receiver(work: Path) -> str:
    """``bench/receiver.py`` on a free loopback port, in its own process; returns its URL."""
    port = free_port()
    receiver = Proc("receiver", [sys.executable, str(ROOT / "bench" / "receiver.py"), "--port", str(port)],
                    dict(os.environ), work)  # fmt: skip
    wait_port(port, 30, receiver)
    return f"http://{HOST}:{port}"


@contextlib.contextmanager
def app_against_receiver(
    prefix: str, *, ref: str | None, name: str, receiver_url: str | None = None
) -> Iterator[tuple[str, str]]:
    """In a working directory (``prefix``), the app's code (``ref``'s, exported, or the working tree's) first on the
    path, a receiver (``bench/receiver.py`` unless ``receiver_url``) and Django against a migrated database named
    ``name``, callbacks to loopback allowed: yields (the receiver's URL, the database's kind); every process stopped
    and the directory removed on the way out."""
    started_in = os.getcwd()
    with work_dir(prefix) as work:
        try:
            app_root = export_revision(ref, work) if ref else ROOT
            sys.path.insert(0, str(app_root))  # before anything imports sapien or deliveries
            # In it too: Celery's Django fix-up puts the working directory first on the path as the app is made.
            os.chdir(app_root)
            receiver = receiver_url or start_receiver(work)
            with database(work, name) as (database_url, kind):
                setup_django(database_url, ESL_ALLOW_PRIVATE_CALLBACKS="true")  # the receiver is on loopback
                yield receiver, kind
        finally:
            os.chdir(started_in)
            stop_everything()
