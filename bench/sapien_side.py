"""Django-side steps of the benchmark, run as ``python bench/sapien_side.py ACTION`` with the stack's env.

    tenant --name N --subs M --callback URL [--extra-callback URL ...]
                                              create an organization, an OAuth client and M subscriptions
                                              (plus one per extra callback)
    relay-probe                               time ``relay_pending`` over what the outbox holds

    --scale (bench/phases/scale.py):
    scale-tenant --name N --callback URL      an organization, an OAuth client that may read the event history,
                                              one subscription to every event type, and a superuser
    partitions --now ISO                      ``history_partitions_ensure(now=...)``
    statement-probes --organization ID --subscription ID --repeats N
                                              time the claim (nothing due, then some due) and the relay statements,
                                              each in a transaction rolled back, and EXPLAIN ANALYZE each once
    drop-day --day YYYY-MM-DD --subscription ID
                                              time ``history_day_drop(day)``, and how long a concurrent reader
                                              of the subscription's delivery log waited meanwhile

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

# The application's code: this checkout, or the snapshot of a git revision that ``python -m bench --ref`` exported.
APP_ROOT = Path(os.environ.get("BENCH_APP_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(APP_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")


def tenant(args: argparse.Namespace) -> dict[str, object]:
    from sapien.core.services import client_create, organization_create
    from subscriptions.services import subscription_create

    organization = organization_create(name=args.name, tier="enterprise")
    created = client_create(
        organization=organization, name=f"{args.name}-client", scopes=["entities:read", "entities:write"]
    )
    subscriptions = [
        str(
            subscription_create(
                organization=organization, callback_url=f"{args.callback}?sub={index}", events=args.events.split(",")
            ).id
        )
        for index in range(args.subs)
    ] + [
        str(subscription_create(organization=organization, callback_url=url, events=["person.created"]).id)
        for url in args.extra_callback
    ]
    return {
        "organization_id": str(organization.id),
        "client_id": created.application.client_id,
        "client_secret": created.client_secret,
        "subscriptions": subscriptions,
    }


def relay_probe(args: argparse.Namespace) -> dict[str, object]:
    from django.conf import settings
    from django.db import connection

    from deliveries.relay import relay_pending

    connection.ensure_connection()
    started = time.perf_counter()
    result = relay_pending(batch_size=settings.ESL_RELAY_BATCH_SIZE, max_batches=args.max_batches)
    seconds = time.perf_counter() - started
    return {
        "events": result.events,
        "deliveries": result.deliveries,
        "seconds": seconds,
        "batch_size": settings.ESL_RELAY_BATCH_SIZE,
    }


def scale_tenant(args: argparse.Namespace) -> dict[str, object]:
    from django.contrib.auth import get_user_model

    from sapien.core.services import client_create, organization_create
    from subscriptions.services import subscription_create

    organization = organization_create(name=args.name, tier="enterprise")
    created = client_create(organization=organization, name=f"{args.name}-client",
                            scopes=["entities:read", "entities:write", "events:read"])  # fmt: skip
    subscription = subscription_create(organization=organization, callback_url=args.callback, events=["*"])
    email, password = f"{args.name}@bench.invalid", secrets.token_urlsafe(18)
    get_user_model().objects.create_superuser(email, password)
    return {
        "organization_id": str(organization.id),
        "subscription_id": str(subscription.id),
        "client_id": created.application.client_id,
        "client_secret": created.client_secret,
        "admin_email": email,
        "admin_password": password,
    }


def partitions(args: argparse.Namespace) -> dict[str, object]:
    from deliveries.partitions import history_partitions_ensure

    return {"created": history_partitions_ensure(now=datetime.fromisoformat(args.now))}


# The newest deliveries of the subscription made due, as a fan-out (or retries coming due) would leave them.
MAKE_DUE_SQL = """
UPDATE deliveries_delivery d
SET status = 'pending', next_attempt_at = now() - interval '1 second', claim_token = NULL, claimed_until = NULL
FROM (SELECT id, event_created_at FROM deliveries_delivery WHERE subscription_id = %(subscription)s
      ORDER BY event_created_at DESC, id DESC LIMIT %(due)s) newest
WHERE d.id = newest.id AND d.event_created_at = newest.event_created_at
"""

# Fresh events in the outbox, as the API's writes leave them for the relay.
FRESH_EVENTS_SQL = """
WITH events AS (
    INSERT INTO events_event (id, organization_id, type, body, created_at, recipient_id)
    SELECT gen_random_uuid(), %(organization)s, 'person.created', '{"bench":"scale"}', clock_timestamp(), NULL
    FROM generate_series(1, %(events)s)
    RETURNING id, organization_id, type, created_at
)
INSERT INTO events_outbox (created_at, event_id, organization_id, type, recipient_id)
SELECT created_at, id, organization_id, type, NULL FROM events
"""


def statement_probes(args: argparse.Namespace) -> dict[str, object]:
    """``claim_due`` and ``relay_batch``, the worker's and the relay's one statement each, timed as they run in
    production, each in a transaction then rolled back (so the live processes never see the rows made due or the
    fresh events): one untimed run, ``--repeats`` timed ones (the set-up before each is not timed), then
    ``EXPLAIN (ANALYZE, BUFFERS)`` of the statement as it was sent (caught with ``execute_wrapper``)."""
    from django.conf import settings
    from django.db import connection, transaction

    from deliveries.claims import claim_due
    from deliveries.relay import relay_batch

    batch = settings.ESL_DELIVERY_BATCH_SIZE
    setup = {"subscription": args.subscription, "organization": args.organization, "due": args.due,
             "events": args.events}  # fmt: skip
    probes: dict[str, tuple[str | None, Callable[[], int]]] = {
        "claim_empty": (None, lambda: len(claim_due(batch_size=batch, token=uuid.uuid4()))),
        "claim_due": (MAKE_DUE_SQL, lambda: len(claim_due(batch_size=batch, token=uuid.uuid4()))),
        "relay": (FRESH_EVENTS_SQL, lambda: relay_batch(batch_size=args.events).deliveries),
    }
    connection.ensure_connection()
    out: dict[str, object] = {"claim_batch": batch, "due": args.due, "events": args.events}
    plans: dict[str, str] = {}
    for name, (prepare, call) in probes.items():
        seconds: list[float] = []
        sent: list[tuple[str, Any]] = []
        rows = 0

        def catch(execute: Any, sql: str, params: Any, many: bool, context: Any, sent: list[Any] = sent) -> Any:
            sent.append((sql, params))
            return execute(sql, params, many, context)

        for run in range(args.repeats + 1):
            with transaction.atomic(), connection.cursor() as cursor:
                if prepare:
                    cursor.execute(prepare, setup)
                del sent[:]
                started = time.perf_counter()
                with connection.execute_wrapper(catch):
                    rows = call()
                if run:
                    seconds.append(time.perf_counter() - started)
                transaction.set_rollback(True)
        statement = max(sent, key=lambda pair: len(pair[0]))  # the claim's or the relay's (the other is a savepoint)
        with transaction.atomic(), connection.cursor() as cursor:
            if prepare:
                cursor.execute(prepare, setup)
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement[0], statement[1])
            plans[name] = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
        out[name] = {"seconds": seconds, "rows": rows, "statements": len(sent)}
    out["plans"] = plans
    return out


# What a reader of the delivery log runs: one index range of every partition, well under a millisecond.
LOG_READ_SQL = """
SELECT id FROM deliveries_delivery WHERE subscription_id = %s ORDER BY event_created_at DESC, id DESC LIMIT 1
"""


def drop_day(args: argparse.Namespace) -> dict[str, object]:
    """``history_day_drop(day)``, timed whole and in its statements (the rest is its commit, which removes the
    files), while another session reads the delivery log every millisecond: how long that reader waited."""
    import threading

    import psycopg
    from django.db import connection

    from deliveries.partitions import history_day_drop

    reads: list[tuple[float, float]] = []  # (start, end) of each read, perf_counter
    stop = threading.Event()

    def read_the_log() -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as reader:
            while not stop.is_set():
                started = time.perf_counter()
                reader.execute(LOG_READ_SQL, (args.subscription,)).fetchall()
                reads.append((started, time.perf_counter()))
                time.sleep(0.001)

    statements: list[float] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append(time.perf_counter() - started)

    connection.ensure_connection()
    reader = threading.Thread(target=read_the_log, daemon=True)
    reader.start()
    time.sleep(0.3)  # the reader's baseline
    from django.db import OperationalError

    # The drop never waits for a lock (NOWAIT); retention tries again on its next pass, and so does this, sooner:
    # a read of the log in progress at that instant refuses it.
    for tries in range(1, 201):
        started = time.perf_counter()
        try:
            with connection.execute_wrapper(timed):
                paths = history_day_drop(date.fromisoformat(args.day))
            break
        except OperationalError:
            if tries == 200:
                raise
            statements.clear()
            time.sleep(0.005)
    ended = time.perf_counter()
    time.sleep(0.1)
    stop.set()
    reader.join(timeout=10)
    during = [end - start for start, end in reads if end >= started and start <= ended]
    before = [end - start for start, end in reads if end < started]
    return {"seconds": ended - started, "statements_seconds": sum(statements), "blobs": len(paths),
            "reader_max_seconds": max(during, default=0.0), "reader_max_before_seconds": max(before, default=0.0),
            "reads_during": len(during), "tries": tries}  # fmt: skip


ACTIONS: dict[str, Callable[[argparse.Namespace], dict[str, object]]] = {
    "tenant": tenant, "relay-probe": relay_probe, "scale-tenant": scale_tenant, "partitions": partitions,
    "statement-probes": statement_probes, "drop-day": drop_day,
}  # fmt: skip


def main() -> None:
    import django

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    tenant_parser = sub.add_parser("tenant")
    tenant_parser.add_argument("--name", required=True)
    tenant_parser.add_argument("--subs", type=int, required=True)
    tenant_parser.add_argument("--callback", required=True)
    tenant_parser.add_argument("--extra-callback", action="append", default=[])
    tenant_parser.add_argument("--events", default="person.created", help="the --subs subscriptions' event types")
    probe = sub.add_parser("relay-probe")
    probe.add_argument("--max-batches", type=int, default=10_000)
    scale_tenant_parser = sub.add_parser("scale-tenant")
    scale_tenant_parser.add_argument("--name", required=True)
    scale_tenant_parser.add_argument("--callback", required=True)
    sub.add_parser("partitions").add_argument("--now", required=True)
    statements = sub.add_parser("statement-probes")
    statements.add_argument("--organization", required=True)
    statements.add_argument("--subscription", required=True)
    statements.add_argument("--repeats", type=int, default=7)
    statements.add_argument("--due", type=int, default=100, help="deliveries made due for the second claim")
    statements.add_argument("--events", type=int, default=100, help="fresh events for the relay batch")
    dropping = sub.add_parser("drop-day")
    dropping.add_argument("--day", required=True)
    dropping.add_argument("--subscription", required=True, help="whose log the concurrent reader reads")
    args = parser.parse_args()
    import sapien.celery  # noqa: F401 - the Celery app, for the statements that publish, as manage.py loads it

    django.setup()
    print(json.dumps(ACTIONS[args.action](args)), flush=True)


if __name__ == "__main__":
    main()
