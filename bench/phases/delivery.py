"""Warm-up, (a) sustained end-to-end throughput and (b) latency: the workload both systems run."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import psycopg

from bench.config import Config
from bench.loadgen import BodyFactory, run_load
from bench.procs import CpuMeter, MemorySampler
from bench.profile import Profiler
from bench.progress import log
from bench.receiving import Receipt, ReceiverClient, drain_timeout
from bench.results import HALF_RATE_LABEL, Deliveries, DeliveryPhase, DeliveryPhases, LoadSummary, Stage
from bench.stats import fmt, ms, pct
from bench.writes import WriteMeter

FIXED_RATE = 100.0  # events/s for the first latency phase

Stages = Callable[[list[Receipt]], dict[str, Stage]]


def delivery_phase(
    receiver: ReceiverClient, sampler: MemorySampler, url: str, token: str | None, body: BodyFactory, subs: int, *,
    count: int, threads: int, rate: float | None = None, max_seconds: float = 600, profiler: Profiler | None = None,
    stages: Stages | None = None, writes_url: str | None = None,
) -> DeliveryPhase:  # fmt: skip
    """Writes ``count`` entities (closed loop, or open loop at ``rate``) and waits for every delivery; with
    ``writes_url``, reads that database's write counters around it (bench/writes.py)."""
    receiver.reset()
    writes = WriteMeter(writes_url) if writes_url else None  # first: it waits for the counters to settle
    meter = CpuMeter(sampler)
    if profiler:
        profiler.start()
    load = run_load(url, token, body, count=count, threads=threads, rate=rate, max_seconds=max_seconds)
    expected = load.ok * subs
    receiver.wait_for(expected, drain_timeout(expected))
    receipts = receiver.dump()
    cpu = meter.stop(work_items=len(receipts))
    counted = Deliveries.count(receipts, expected=expected, start=load.first_start)
    return DeliveryPhase(
        **counted.fields(),
        cpu=cpu,
        writes=writes.stop(deliveries=counted.unique) if writes else None,
        profile=profiler.stop() if profiler else None,
        stages_ms=stages(receipts) if stages else None,
        load=LoadSummary.of(load),
        events=load.ok,
        events_per_s=counted.deliveries_per_s / subs if counted.deliveries_per_s else None,
        target_rate=rate,
        achieved_rate=round(load.ok / load.seconds, 1) if rate else None,
    )


def delivery_phases(
    cfg: Config, receiver: ReceiverClient, sampler: MemorySampler, api: str, token: str | None,
    bodies: Callable[[str], BodyFactory], title: str, targets: Callable[[], dict[str, int]],
    stages: Stages | None = None, writes_url: str | None = None,
) -> DeliveryPhases:  # fmt: skip
    """Warm-up, (a) sustained throughput, (b) latency at 100 events/s (the same load for every system), at half
    of (a)'s event rate (where the latency target is set) and at 80 % of it; with ``writes_url``, (a)'s writes to
    that database."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")

    def phase(tag: str, count: int, rate: float | None = None, profile: bool = False) -> DeliveryPhase:
        return delivery_phase(
            receiver,
            sampler,
            api,
            token,
            bodies(f"{slug}-{tag}"),
            cfg.subs,
            count=count,
            threads=cfg.threads,
            rate=rate,
            max_seconds=cfg.latency_seconds * 1.2 + 1 if rate else 600,
            profiler=Profiler(cfg.profile_dir / slug, targets()) if profile and cfg.profile_dir else None,
            stages=stages,
            writes_url=writes_url if tag == "a" else None,
        )

    log(f"{title} warm-up")
    warmup_missing = phase("warm", 20 if cfg.quick else 40).missing
    log(f"{title} (a) {cfg.events} writes x {cfg.subs} subscriptions, {cfg.threads} client threads")
    a = phase("a", cfg.events, profile=True)
    log(f"    {fmt(a.deliveries_per_s)} deliveries/s, API {a.load.req_per_s} writes/s, missing {a.missing}")
    if a.writes:
        w = a.writes
        log(f"    per delivery: {w.rows_per_delivery} rows, {w.index_entries_per_delivery} index entries, "
            f"{fmt(w.wal_bytes_per_delivery)} WAL bytes")  # fmt: skip
    b_latency = []
    event_rate = a.events_per_s or 10.0
    rates = (("fixed 100/s", FIXED_RATE), (HALF_RATE_LABEL, round(0.5 * event_rate, 1)),
             ("80% of (a)", round(0.8 * event_rate, 1)))  # fmt: skip
    for label, rate in rates:
        log(f"{title} (b) latency at {rate} events/s for {cfg.latency_seconds:.0f} s")
        b = replace(phase(f"b{rate}", max(int(rate * cfg.latency_seconds), 1), rate), label=label)
        b_latency.append(b)
        lat = b.latency_ms
        log(
            f"    p50/p95/p99 {lat.p50}/{lat.p95}/{lat.p99} ms, achieved {b.achieved_rate}/s, "
            f"missing {b.missing}, foreign CPU {b.cpu.foreign_cores} cores"
        )
        if b.stages_ms:
            log("    p50 by stage (ms): " + ", ".join(f"{k} {v.p50}" for k, v in b.stages_ms.items()))
    return DeliveryPhases(warmup_missing=warmup_missing, a_sustained=a, b_latency=b_latency)


STAGES_SQL = """
SELECT d.id::text, extract(epoch FROM e.created_at), extract(epoch FROM d.created_at), extract(epoch FROM a.started_at)
FROM deliveries_delivery d
JOIN events_event e ON e.id = d.event_id
JOIN deliveries_deliveryattempt a ON a.delivery_id = d.id AND a.number = 1
WHERE d.id = ANY(%s::uuid[])
"""


def sapien_stages(db_url: str) -> Stages:
    """Where the latency goes: event row -> delivery row (relay) -> first attempt started (broker, worker) ->
    receipt (HTTP), from the rows' own timestamps and the receiver's arrival times."""

    def stages(receipts: list[Receipt]) -> dict[str, Stage]:
        arrivals = {receipt.delivery_key: receipt.arrival for receipt in receipts}
        with psycopg.connect(db_url, autocommit=True) as conn:
            rows = conn.execute(STAGES_SQL, (list(arrivals),)).fetchall()
        spans: dict[str, list[float]] = {"event->fan-out": [], "fan-out->send": [], "send->receipt": []}
        for delivery_id, event_at, fanned_at, sent_at in rows:
            spans["event->fan-out"].append(float(fanned_at - event_at))
            spans["fan-out->send"].append(float(sent_at - fanned_at))
            spans["send->receipt"].append(arrivals[delivery_id] - float(sent_at))
        return {name: Stage(p50=ms(pct(values, 0.5)), p99=ms(pct(values, 0.99)), n=len(values))
                for name, values in spans.items()}  # fmt: skip

    return stages
