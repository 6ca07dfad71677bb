"""(c) relay throughput against a raw-SQL loop, then (a2) the delivery side alone on what it fanned out."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg

from bench.config import Config
from bench.phases.limits import LIMITS_PY, PYTHON, run_json
from bench.procs import CpuMeter
from bench.progress import log
from bench.receiving import ReceiverClient, drain_timeout
from bench.results import Deliveries, Drain, Relay
from bench.stack import SapienStack
from bench.stats import fmt, ratio
from bench.writes import WriteMeter, own_statement

ENVELOPE = json.dumps(
    {"id": "00000000-0000-0000-0000-000000000000", "type": "person.created", "version": "1.0",
     "timestamp": "2024-01-15T14:32:00.000Z", "organization_id": "", "data": {"name": "Bench", "notes": "x" * 600},
     "metadata": {"correlation_id": "bench", "triggered_by": "bench", "source": "api"}},
    separators=(",", ":"),
)  # fmt: skip


# Keyed by whether the revision has the narrow outbox (events_outbox), or marks events relayed (a --ref before it).
OUTBOX_DEPTH_SQL = {
    True: "SELECT count(*) FROM events_outbox",
    False: "SELECT count(*) FROM events_event WHERE relayed_at IS NULL",
}
OUTBOX_FILL_SQL = {  # N events as record_event() writes them
    True: "WITH events AS (INSERT INTO events_event (id, organization_id, type, body, created_at, recipient_id)"
    " SELECT gen_random_uuid(), %s, 'person.created', %s, clock_timestamp(), NULL"
    " FROM generate_series(1, %s) RETURNING id, organization_id, type, created_at)"
    " INSERT INTO events_outbox (created_at, event_id, organization_id, type, recipient_id)"
    " SELECT created_at, id, organization_id, type, NULL FROM events",
    False: "INSERT INTO events_event (id, organization_id, type, body, created_at, relayed_at, recipient_id)"
    " SELECT gen_random_uuid(), %s, 'person.created', %s, clock_timestamp(), NULL, NULL FROM generate_series(1, %s)",
}


def relay_phase(
    cfg: Config, stack: SapienStack, db_url: str, broker: str, receiver: ReceiverClient, receiver_url: str
) -> Relay:
    """Relay stopped; N events straight into the outbox; time relay_pending; compare with raw SQL.

    Then the delivery side alone: part of the fanned-out deliveries is kept, held back, the worker
    started, and the deliveries released at once; the receiver times the drain.
    """
    n = cfg.relay_events
    tenant = stack.side("tenant", "--name", f"bench-{broker}-c", "--subs", str(cfg.subs), "--callback",
                        f"{receiver_url}/drain")  # fmt: skip
    org = str(tenant["organization_id"])
    stack.stop("beat", "relay", "worker")  # beat's relay sweep and the worker would race the probe
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            narrow_outbox = conn.execute("SELECT to_regclass('events_outbox') IS NOT NULL").fetchone() == (True,)
            row = conn.execute(OUTBOX_DEPTH_SQL[narrow_outbox]).fetchone()
            leftover = row[0] if row else 0
            conn.execute(OUTBOX_FILL_SQL[narrow_outbox], (org, ENVELOPE, n))
            conn.execute("ANALYZE events_event")
            if narrow_outbox:
                conn.execute("ANALYZE events_outbox")
        log(f"[{broker}] (c) relay_pending over {n} outbox rows x {cfg.subs} subscriptions")
        probe: dict[str, Any] = stack.side("relay-probe")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM deliveries_delivery WHERE organization_id = %s AND event_id NOT IN"
                " (SELECT id FROM events_event WHERE organization_id = %s ORDER BY created_at LIMIT %s)",
                (org, org, cfg.drain_events),
            )
            conn.execute(  # held back, and unclaimed: a relay may hand its batches over born claimed
                "UPDATE deliveries_delivery SET next_attempt_at = now() + interval '1 day', claim_token = NULL,"
                " claimed_until = NULL WHERE organization_id = %s",
                (org,),
            )
    finally:
        stack.start("relay", "worker", "beat")
    drain = drain_phase(stack, db_url, org, broker, receiver)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM deliveries_deliveryattempt WHERE delivery_id IN"
            " (SELECT id FROM deliveries_delivery WHERE organization_id = %s)",
            (org,),
        )
        conn.execute("DELETE FROM deliveries_delivery WHERE organization_id = %s", (org,))
        conn.execute("DELETE FROM events_event WHERE organization_id = %s", (org,))
    baseline = run_json([PYTHON, LIMITS_PY, "relay-sql", "--url", db_url, "--events", str(n), "--subs", str(cfg.subs),
                         "--batch", str(probe["batch_size"])], 600)  # fmt: skip
    sapien_rate = probe["events"] / probe["seconds"]
    base_rate = baseline["events"] / baseline["seconds"]
    log(f"    relay {sapien_rate:.0f} events/s vs raw SQL {base_rate:.0f} events/s")
    return Relay(
        events=n, leftover_before=leftover, probe=probe, baseline=baseline, events_per_s=sapien_rate,
        deliveries_per_s=probe["deliveries"] / probe["seconds"], baseline_events_per_s=base_rate,
        baseline_deliveries_per_s=baseline["deliveries"] / baseline["seconds"],
        ratio_to_baseline=ratio(sapien_rate, base_rate), drain=drain,
    )  # fmt: skip


def drain_phase(stack: SapienStack, db_url: str, org: str, broker: str, receiver: ReceiverClient) -> Drain:
    """Delivery capacity without the API: held-back deliveries released at once, timed at the receiver."""
    time.sleep(3)  # the worker and beat connect to the broker
    receiver.reset()
    writes = WriteMeter(db_url)  # first: it waits for the counters to settle
    meter = CpuMeter(stack.sampler)
    with psycopg.connect(db_url, autocommit=True) as conn:
        row, release = own_statement(
            conn,
            "the release (an UPDATE of the held-back deliveries)",
            "WITH released AS (UPDATE deliveries_delivery SET next_attempt_at = now() WHERE organization_id = %s"
            " RETURNING 1) SELECT count(*) FROM released",
            (org,),
        )
    released_at = time.time()
    expected = row[0] if row else 0
    log(f"[{broker}] (a2) delivery drain: {expected} deliveries released at once (woken by beat's 1 s sweep)")
    receiver.wait_for(expected, drain_timeout(expected))
    receipts = receiver.dump()
    counted = Deliveries.count(receipts, expected=expected, start=released_at)
    cpu = meter.stop(work_items=len(receipts))
    arrivals = sorted(receipt.arrival for receipt in receipts)
    out = Drain(
        **counted.fields(),
        cpu=cpu,
        first_receipt_after_s=round(arrivals[0] - released_at, 3) if arrivals else None,
        first_to_last_per_s=(len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None,
        writes=writes.stop(deliveries=counted.unique, own=release),
    )
    log(f"    {fmt(out.first_to_last_per_s)} deliveries/s first->last receipt, missing {out.missing}")
    return out
