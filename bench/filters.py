"""The relay with and without payload filters, in one process: ``python -m bench.filters``.

    .venv/bin/python -m bench.filters [--events 4000] [--subs 50] [--repeats 2]

Django runs in this process against a real PostgreSQL (the embedded one, in a temporary directory, or
``DATABASE_URL`` when set: it then gets organizations, subscriptions, events and deliveries of its own, deleted
at the end). Each round, for each variant, a fresh enterprise organization gets ``--subs`` subscriptions to
``availability.changed`` and ``--events`` events of that type (``current_status`` "busy", a ~0.5 KB envelope)
inserted into the event log and the outbox with SQL; then ``relay_pending()`` is timed until the outbox is
empty (each batch committed, deliveries born pending, as ``(c)`` of ``python -m bench`` does):

    baseline     the relay statement with its payload-filter parts taken out, no filters (the cost before them)
    none         the relay statement as it is, no subscription with a filter
    all match    every subscription with a filter that every event matches: as many deliveries as ``none``
    half match   every subscription with a filter, half of them matching: half the deliveries

Variants run in a rotated order each round; the figures are medians over rounds. Progress goes to stderr, the
table to stdout, every figure to bench/results/<timestamp>-filters.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.in_process import database, setup_django, work_dir, write_results
from bench.procs import ROOT
from bench.progress import log

VARIANTS = ("baseline", "none", "all match", "half match")
BUSY = {"data": {"current_status": "busy"}}
AWAY = {"data": {"current_status": "away"}}

# Fresh availability.changed events in the log and the outbox, as the API's writes leave them for the relay.
FRESH_EVENTS_SQL = """
WITH events AS (
    INSERT INTO events_event (id, organization_id, type, body, created_at, recipient_id)
    SELECT id, %(organization)s, 'availability.changed',
           json_build_object(
               'id', id, 'type', 'availability.changed', 'version', '1.0',
               'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'organization_id', %(organization)s,
               'data', json_build_object('user_id', gen_random_uuid(), 'previous_status', 'available',
                                         'current_status', 'busy', 'profile_id', NULL, 'effective_until', NULL,
                                         'reason', 'manual'),
               'metadata', json_build_object('correlation_id', gen_random_uuid(), 'triggered_by', gen_random_uuid(),
                                             'source', 'api'))::text,
           clock_timestamp(), NULL
    FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, %(events)s)) AS fresh
    RETURNING id, organization_id, type, created_at
)
INSERT INTO events_outbox (created_at, event_id, organization_id, type, recipient_id)
SELECT created_at, id, organization_id, type, NULL FROM events
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.filters", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=4000, help="events relayed per variant and round")
    p.add_argument("--subs", type=int, default=50, help="subscriptions of the organization")
    p.add_argument("--repeats", type=int, default=2, help="rounds; medians are reported")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.events < 1 or args.subs < 2 or args.repeats < 1:
        log("--events and --repeats must be positive, --subs at least 2")
        return 2
    started_at = datetime.now(UTC)
    with work_dir("sapien-filters-") as work, database(work, "filters") as (database_url, kind):
        setup_django(database_url)
        result = measure(args, database=kind, started_at=started_at)
    path = write_results(result, started_at=started_at, name="filters")
    report(result)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


def statement_without_filters(sql: str) -> str:
    """The relay statement with the payload-filter parts taken out: what it was before them."""
    from deliveries.relay import FILTER_BODIES_SQL
    from subscriptions.payload_filter import filter_passes_sql

    start = FILTER_BODIES_SQL.split("(", 1)[0]  # "filtering AS MATERIALIZED "
    without, cut = re.subn(r"\), " + re.escape(start) + r"\(.*?\n\), fanned AS \(", "), fanned AS (", sql, flags=re.S)
    passes = " AND " + filter_passes_sql(body_jsonb="fb.body", payload_filter="s.filter")
    join = "    LEFT JOIN filter_bodies fb ON fb.id = e.id\n"
    if cut != 1 or without.count(passes) != 1 or without.count(join) != 1:
        raise RuntimeError("the relay statement changed shape: update statement_without_filters()")
    return without.replace(passes, "").replace(join, "")


def run_variant(variant: str, *, events: int, subs: int) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    import deliveries.relay as relay
    from sapien.core.services import organization_create
    from subscriptions.models import Subscription

    organization = organization_create(name=f"filters-{variant}-{time.monotonic_ns()}", tier="enterprise")
    for index in range(subs):
        payload_filter = None
        if variant == "all match":
            payload_filter = BUSY
        elif variant == "half match":
            payload_filter = BUSY if index % 2 == 0 else AWAY
        Subscription.objects.create(
            organization=organization, callback_url=f"https://hooks.example.com/{index}",
            events=["availability.changed"], secret="s" * 32, filter=payload_filter,
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(FRESH_EVENTS_SQL, {"organization": str(organization.id), "events": events})
        cursor.execute("ANALYZE events_outbox")
    statement = relay.RELAY_SQL
    if variant == "baseline":
        relay.RELAY_SQL = statement_without_filters(statement)
    try:
        started = time.perf_counter()
        result = relay.relay_pending(batch_size=settings.ESL_RELAY_BATCH_SIZE, max_batches=1_000_000)
        seconds = time.perf_counter() - started
    finally:
        relay.RELAY_SQL = statement
    with connection.cursor() as cursor:  # untimed: the next variant starts from the same state
        cursor.execute("DELETE FROM deliveries_delivery WHERE organization_id = %s", [organization.id])
        cursor.execute("DELETE FROM events_event WHERE organization_id = %s", [organization.id])
    organization.delete()
    return {"events": result.events, "deliveries": result.deliveries, "seconds": seconds,
            "events_per_second": result.events / seconds}  # fmt: skip


def measure(args: argparse.Namespace, *, database: str, started_at: datetime) -> dict[str, Any]:
    from django.conf import settings

    from deliveries.partitions import history_partitions_ensure

    history_partitions_ensure(now=datetime.now(UTC))
    run_variant("none", events=min(args.events, 500), subs=args.subs)  # warm-up: caches, plans, partitions
    rounds: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for round_index in range(args.repeats):
        order = VARIANTS[round_index % len(VARIANTS) :] + VARIANTS[: round_index % len(VARIANTS)]
        for variant in order:
            figures = run_variant(variant, events=args.events, subs=args.subs)
            log(f"round {round_index + 1} {variant}: {figures['events_per_second']:.0f} events/s, "
                f"{figures['deliveries']} deliveries")  # fmt: skip
            rounds[variant].append(figures)
    medians = {
        variant: {
            "events_per_second": statistics.median(r["events_per_second"] for r in runs),
            "deliveries": runs[0]["deliveries"],
        }
        for variant, runs in rounds.items()
    }
    none = medians["none"]["events_per_second"]
    for figures in medians.values():
        figures["ratio_to_none"] = figures["events_per_second"] / none
    return {"started_at": started_at, "database": database, "events": args.events, "subscriptions": args.subs,
            "repeats": args.repeats, "relay_batch_size": settings.ESL_RELAY_BATCH_SIZE, "medians": medians,
            "rounds": rounds}  # fmt: skip


def report(result: dict[str, Any]) -> None:
    print(f"relay, {result['events']} availability.changed events x {result['subscriptions']} subscriptions, "
          f"batches of {result['relay_batch_size']}, median of {result['repeats']} ({result['database']})")  # fmt: skip
    print(f"{'variant':<12} {'events/s':>10} {'deliveries':>11} {'vs none':>8}")
    for variant, figures in result["medians"].items():
        print(f"{variant:<12} {figures['events_per_second']:>10.0f} {figures['deliveries']:>11} "
              f"{figures['ratio_to_none']:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
