"""A relay pass's cost as a held snapshot keeps relayed outbox entries: ``python -m bench.held_snapshot``.

    DATABASE_URL=postgresql://… .venv/bin/python -m bench.held_snapshot [--kept 0,5000,20000,50000,100000]

What (g) of the bench does to the relay: while one transaction holds an XID open, no entry deleted from the outbox
after it began can be removed, and the relay's scan (``ORDER BY created_at``, from the oldest entry) walks them
all; and each subscription's in-flight state row (``subscriptions_sendstate``), which the relay's pass and the
worker's record each update, keeps every version since, which each read of the row walks. Django runs in this
process against the (migrated) database ``DATABASE_URL`` names; an organization of its own with three
subscriptions gets events in batches of 200, relayed at once, and each state row ``--state-updates`` updates per
event (as (a)'s one-event passes and records make), until the outbox has deleted each ``--kept`` count of entries
since the hold began; at each, the median and p90 of 20 relay passes of one event (the event written, then
``relay_batch``, as the relay does at low rates) and of 20 events (as it does when it falls behind). The rows are
left behind: use a scratch database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

# The repository's root, for ``sapien`` and the apps, when run as a script as well as with ``-m``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

PASSES = 20
TIMED_PASSES = (1, 20)  # events per timed pass: as the relay does at low rates, and when it falls behind


def median_p90(times_ms: list[float]) -> str:
    ordered = sorted(times_ms)
    return f"{statistics.median(ordered):.2f} / {ordered[int(len(ordered) * 0.9) - 1]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.held_snapshot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--kept", default="0,5000,20000,50000,100000", help="outbox entries kept by the hold")
    parser.add_argument("--state-updates", type=int, default=2, help="updates of each state row per event kept")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL to a migrated scratch database")
    kept_counts = [int(count) for count in args.kept.split(",")]

    import django

    django.setup()
    import psycopg
    from django.db import transaction

    from deliveries.relay import relay_batch
    from sapien.core.services import organization_create
    from sapien.events.outbox import record_event
    from subscriptions.models import Subscription

    organization = organization_create(name=f"held-snapshot-{uuid.uuid4()}", tier="enterprise")
    for index in range(3):
        Subscription.objects.create(
            organization=organization, callback_url=f"http://127.0.0.1:9/{index}", events=["*"], secret="s" * 20
        )

    def write(count: int) -> None:
        with transaction.atomic():
            for _ in range(count):
                record_event(organization_id=organization.id, event_type="person.created", data={"name": "x"})

    def pass_ms(events: int) -> float:
        write(events)
        started = time.perf_counter()
        relay_batch(batch_size=100, hand=True)
        return (time.perf_counter() - started) * 1000

    def update_states(times: int) -> None:
        """As the relay's passes and the workers' records would: each a statement of its own, autocommitted."""
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn, conn.pipeline():
            for _ in range(times):
                conn.execute(
                    "UPDATE subscriptions_sendstate SET taken = taken + 0 WHERE subscription_id = ANY(%s)",
                    [subscription_ids],
                )

    for _ in range(PASSES):  # warm-up: the connection, the prepared statement, every state row
        pass_ms(1)
    subscription_ids = list(Subscription.objects.filter(organization=organization).values_list("id", flat=True))
    holder = psycopg.connect(os.environ["DATABASE_URL"])
    print("outbox entries kept | state row versions kept | relay pass of 1 event, median / p90 ms | of 20 events")
    relayed = 0
    try:
        for kept in kept_counts:
            if kept and holder.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                holder.execute("SELECT txid_current()")  # the hold: an XID open from here on
            while relayed < kept:
                write(200)
                while relay_batch(batch_size=500, hand=True).events:
                    pass
                update_states(200 * args.state_updates)
                relayed += 200
            versions = relayed if holder.info.transaction_status != psycopg.pq.TransactionStatus.IDLE else 0
            one, twenty = (median_p90([pass_ms(events) for _ in range(PASSES)]) for events in TIMED_PASSES)
            print(f"{relayed:>19,} | {versions * args.state_updates:>23,} | {one:<38} | {twenty}", flush=True)
            relayed += PASSES * sum(TIMED_PASSES)
    finally:
        holder.rollback()
        holder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
