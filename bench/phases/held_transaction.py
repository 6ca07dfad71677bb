"""(g) held transaction: (a)'s closed-loop workload while another session keeps one transaction open."""

from __future__ import annotations

import psycopg

from bench.config import Config
from bench.loadgen import person_body, run_load
from bench.procs import CpuMeter, MemorySampler
from bench.progress import log
from bench.receiving import ReceiverClient
from bench.results import Deliveries, HeldTransaction, LoadSummary
from bench.stats import fmt, fx, ratio

WINDOWS = 6  # throughput is reported per sixth of the hold


def held_transaction_phase(
    cfg: Config, receiver: ReceiverClient, sampler: MemorySampler, api: str, token: str, db_url: str,
    broker: str, sustained_deliveries_per_s: float | None,
) -> HeldTransaction:  # fmt: skip
    """The open transaction holds an XID, so VACUUM can remove no dead rows anywhere in the database;
    throughput is reported per window over the hold and compared with (a).
    """
    log(f"[{broker}] (g) {cfg.hold_seconds:.0f} s of (a)'s workload with one transaction held open")
    receiver.reset()
    meter = CpuMeter(sampler)
    holder = psycopg.connect(db_url)
    try:
        holder.execute("SELECT txid_current()")  # an XID, as a writing transaction would hold
        load = run_load(api, token, person_body(f"hold-{broker}"), count=10**9, threads=cfg.threads,
                        max_seconds=cfg.hold_seconds)  # fmt: skip
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute(  # the table is partitioned by day: its partitions hold the rows
                "SELECT coalesce(sum(s.n_dead_tup), 0) FROM pg_stat_user_tables s"
                " JOIN pg_inherits i ON i.inhrelid = s.relid WHERE i.inhparent = 'deliveries_delivery'::regclass"
            ).fetchone()
    finally:
        holder.rollback()
        holder.close()
    expected = load.ok * cfg.subs
    receipts, _ = receiver.collect(expected, "/sapien")
    counted = Deliveries.count(receipts, expected=expected, start=load.first_start)
    cpu = meter.stop(work_items=len(receipts))
    span = cfg.hold_seconds / WINDOWS
    counts = [0] * WINDOWS
    for arrival in sorted(receipt.arrival for receipt in receipts):
        index = int((arrival - load.first_start) / span)
        if 0 <= index < WINDOWS:
            counts[index] += 1
    per_window = [round(count / span, 1) for count in counts]
    out = HeldTransaction(
        **counted.fields(),
        cpu=cpu,
        hold_seconds=cfg.hold_seconds,
        per_window_deliveries_per_s=per_window,
        dead_delivery_rows_at_end=row[0] if row else None,
        load=LoadSummary.of(load),
        ratio_to_a=ratio(counted.deliveries_per_s, sustained_deliveries_per_s),
        last_window_ratio_to_a=ratio(per_window[-1], sustained_deliveries_per_s),
    )
    log(f"    {fmt(out.deliveries_per_s)} deliveries/s over the hold ({fx(out.ratio_to_a)} of (a)); per window "
        f"{out.per_window_deliveries_per_s}; missing {out.missing}")  # fmt: skip
    return out
