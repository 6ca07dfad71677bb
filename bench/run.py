"""Sapien ESL benchmark: the whole pipeline on loopback, with a peer and physical limits measured in the same run.

    .venv/bin/python bench/run.py [--quick] [--soak] [--broker redis|amqp|both] [--events K] [--subs M]
                                  [--no-peer] [--profile] [--ref REV] [--keep]
    make bench BENCH_ARGS="--quick"

Starts, in a temporary directory: embedded PostgreSQL and Redis (free ports), a fast
receiver in a process of its own, and per broker Sapien's gunicorn (2 workers),
relay, Celery worker (concurrency 2) and beat; then the ``django-webhook`` peer on
the same database server, broker and receiver. Figures:

    (a) sustained end-to-end deliveries/s: K events x M subscriptions, first write -> last receipt
    (a2) the delivery side alone: due deliveries released at once, drained by the worker
    (b) latency event timestamp -> receipt, p50/p95/p99, at 100 events/s and at 80 % of (a)'s event rate
    (c) relay throughput (outbox rows/s) vs a raw-SQL claim-and-insert loop
    (d) API create throughput with ESL_ENABLED=true vs false
    (e) peak RSS of every process; with --soak, RSS growth over a 10-minute run at a moderate rate
    limits: one keep-alive client posting to the receiver (req/s); single-row INSERTs (rows/s)

A table is printed and the figures go to bench/results/<timestamp>.json. The exit
status is non-zero when a Sapien delivery was lost (received < expected). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from bench import procs  # noqa: E402
from bench.loadgen import LoadResult, peer_body, person_body, run_load  # noqa: E402
from bench.peer import PeerStack  # noqa: E402
from bench.procs import HOST, CpuMeter, MemorySampler, Proc, free_port, wait_port  # noqa: E402
from bench.profile import Profiler, py_spy  # noqa: E402
from bench.stack import DEFAULT_AMQP, SapienStack, Services, amqp_answers, redact  # noqa: E402

PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results"
FIXED_RATE = 100.0  # events/s for the first latency phase


@dataclass
class Config:
    quick: bool
    events: int
    subs: int
    threads: int
    latency_seconds: float
    relay_events: int
    api_requests: int
    limit_seconds: float
    peer: bool
    soak: bool
    drain_events: int
    hold_seconds: float = 300.0  # (g) how long one transaction stays open
    isolation_seconds: float = 30.0  # (f) each of the clean and the mixed run
    soak_seconds: float = 600.0
    soak_rate: float = 50.0
    profile_dir: Path | None = None  # --profile: py-spy collapsed stacks of phase (a) go here


def build_config(args: argparse.Namespace) -> Config:
    if args.quick:
        return Config(quick=True, events=args.events or 50, subs=args.subs or 2, threads=8, latency_seconds=5,
                      relay_events=1000, api_requests=100, limit_seconds=1, peer=args.peer, drain_events=200,
                      soak=args.soak, hold_seconds=20, isolation_seconds=8)  # fmt: skip
    return Config(quick=False, events=args.events or 2000, subs=args.subs or 3, threads=8, latency_seconds=30,
                  relay_events=20000, api_requests=600, limit_seconds=5, peer=not args.no_peer, drain_events=2000,
                  soak=args.soak)  # fmt: skip


# --- statistics ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


# --- receiver ------------------------------------------------------------------------------------


class ReceiverClient:
    def __init__(self, port: int) -> None:
        self.url = f"http://{HOST}:{port}"
        self.session = requests.Session()
        self.session.trust_env = False

    def count(self) -> int:
        return int(self.session.get(f"{self.url}/_stats", timeout=30).json()["count"])

    def reset(self) -> None:
        self.session.get(f"{self.url}/_reset", timeout=30)

    def dump(self) -> list[list[Any]]:
        records: list[list[Any]] = self.session.get(f"{self.url}/_dump?clear=1", timeout=120).json()
        return records

    def wait_for(self, expected: int, timeout: float, stall: float = 30.0) -> int:
        """Polls until ``expected`` requests arrived, nothing arrived for ``stall`` s, or ``timeout``."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        count = 0
        while time.monotonic() < deadline:
            count = self.count()
            if count >= expected:
                return count
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > stall:
                break
            time.sleep(0.05)
        return count


def collect(
    receiver: ReceiverClient, expected: int, path_prefix: str, stall: float = 30.0
) -> tuple[list[list[Any]], int]:
    """Dumps the receiver until ``expected`` distinct deliveries to paths under ``path_prefix`` arrived, or
    none arrived for ``stall`` seconds. Returns those, and how many requests went to other paths."""
    kept: list[list[Any]] = []
    others = 0
    seen: set[str] = set()
    deadline = time.monotonic() + drain_timeout(expected)
    last_change = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < stall:
        dumped = receiver.dump()
        fresh = [record for record in dumped if str(record[4]).startswith(path_prefix)]
        others += len(dumped) - len(fresh)
        if fresh:
            last_change = time.monotonic()
            kept += fresh
            seen.update(record[1] for record in fresh)
        if len(seen) >= expected:
            break
        time.sleep(0.2)
    return kept, others


def analyze(records: list[list[Any]], *, expected: int, start: float) -> dict[str, Any]:
    keys = [record[1] for record in records]
    unique = len(set(keys))
    latencies = [record[0] - record[3] for record in records if record[3] is not None]
    last = max((record[0] for record in records), default=start)
    return {
        "expected": expected,
        "received": len(records),
        "unique": unique,
        "duplicates": len(records) - unique,
        "missing": max(expected - unique, 0),
        "first_write": start,
        "last_receipt": last,
        "seconds": last - start,
        "deliveries_per_s": unique / (last - start) if last > start else None,
        "latency_ms": {
            "p50": ms(pct(latencies, 0.50)), "p95": ms(pct(latencies, 0.95)), "p99": ms(pct(latencies, 0.99)),
            "max": ms(max(latencies) if latencies else None), "n": len(latencies),
        },
    }  # fmt: skip


def load_summary(result: LoadResult) -> dict[str, Any]:
    return {
        "sent": result.sent,
        "ok": result.ok,
        "errors": len(result.errors),
        "first_errors": result.errors[:3],
        "seconds": round(result.seconds, 3),
        "req_per_s": round(result.rate, 1),
        "p50_ms": ms(pct(result.latencies, 0.5)),
        "p99_ms": ms(pct(result.latencies, 0.99)),
        "max_lag_s": round(result.max_lag, 3),
    }


def drain_timeout(expected: int) -> float:
    return min(120 + expected / 20, 900)


def delivery_phase(
    receiver: ReceiverClient, sampler: MemorySampler, url: str, token: str | None, body: Any, subs: int, *,
    count: int, threads: int, rate: float | None = None, max_seconds: float = 600, profiler: Profiler | None = None,
    stages: Callable[[list[list[Any]]], dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Writes ``count`` entities (closed loop, or open loop at ``rate``) and waits for every delivery."""
    receiver.reset()
    meter = CpuMeter(sampler)
    if profiler:
        profiler.start()
    load = run_load(url, token, body, count=count, threads=threads, rate=rate, max_seconds=max_seconds)
    expected = load.ok * subs
    receiver.wait_for(expected, drain_timeout(expected))
    records = receiver.dump()
    cpu = meter.stop(work_items=len(records))
    out = analyze(records, expected=expected, start=load.first_start)
    out["cpu"] = cpu
    if profiler:
        out["profile"] = profiler.stop()
    if stages:
        out["stages_ms"] = stages(records)
    out["load"] = load_summary(load)
    out["events"] = load.ok
    out["events_per_s"] = out["deliveries_per_s"] / subs if out["deliveries_per_s"] else None
    out["target_rate"] = rate
    out["achieved_rate"] = round(load.ok / load.seconds, 1) if rate else None
    return out


def delivery_phases(
    cfg: Config, receiver: ReceiverClient, sampler: MemorySampler, api: str, token: str | None,
    bodies: Callable[[str], Any], title: str, targets: Callable[[], dict[str, int]],
    stages: Callable[[list[list[Any]]], dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Warm-up, (a) sustained throughput, (b) latency at 100 events/s and at 80 % of (a)'s event rate."""
    out: dict[str, Any] = {}
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")

    def phase(tag: str, count: int, rate: float | None = None, profile: bool = False) -> dict[str, Any]:
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
        )

    log(f"{title} warm-up")
    out["warmup_missing"] = phase("warm", 20 if cfg.quick else 40)["missing"]
    log(f"{title} (a) {cfg.events} writes x {cfg.subs} subscriptions, {cfg.threads} client threads")
    a = out["a_sustained"] = phase("a", cfg.events, profile=True)
    log(f"    {fmt(a['deliveries_per_s'])} deliveries/s, API {a['load']['req_per_s']} writes/s, missing {a['missing']}")
    out["b_latency"] = []
    event_rate = a["events_per_s"] or 10.0
    for label, rate in (("fixed 100/s", FIXED_RATE), ("80% of (a)", round(0.8 * event_rate, 1))):
        log(f"{title} (b) latency at {rate} events/s for {cfg.latency_seconds:.0f} s")
        b = phase(f"b{rate}", max(int(rate * cfg.latency_seconds), 1), rate)
        b["label"] = label
        out["b_latency"].append(b)
        lat = b["latency_ms"]
        log(
            f"    p50/p95/p99 {lat['p50']}/{lat['p95']}/{lat['p99']} ms, achieved {b['achieved_rate']}/s, "
            f"missing {b['missing']}, foreign CPU {b['cpu']['foreign_cores']} cores"
        )
        if b.get("stages_ms"):
            log("    p50 by stage (ms): " + ", ".join(f"{k} {v['p50']}" for k, v in b["stages_ms"].items()))
    return out


STAGES_SQL = """
SELECT d.id::text, extract(epoch FROM e.created_at), extract(epoch FROM d.created_at), extract(epoch FROM a.started_at)
FROM deliveries_delivery d
JOIN events_event e ON e.id = d.event_id
JOIN deliveries_deliveryattempt a ON a.delivery_id = d.id AND a.number = 1
WHERE d.id = ANY(%s::uuid[])
"""


def sapien_stages(db_url: str) -> Callable[[list[list[Any]]], dict[str, Any]]:
    """Where the latency goes: event row -> delivery row (relay) -> first attempt started (broker, worker) ->
    receipt (HTTP), from the rows' own timestamps and the receiver's arrival times."""

    def stages(records: list[list[Any]]) -> dict[str, Any]:
        arrivals = {record[1]: record[0] for record in records}
        with psycopg.connect(db_url, autocommit=True) as conn:
            rows = conn.execute(STAGES_SQL, (list(arrivals),)).fetchall()
        spans: dict[str, list[float]] = {"event->fan-out": [], "fan-out->send": [], "send->receipt": []}
        for delivery_id, event_at, fanned_at, sent_at in rows:
            spans["event->fan-out"].append(float(fanned_at - event_at))
            spans["fan-out->send"].append(float(sent_at - fanned_at))
            spans["send->receipt"].append(arrivals[delivery_id] - float(sent_at))
        return {name: {"p50": ms(pct(values, 0.5)), "p99": ms(pct(values, 0.99)), "n": len(values)}
                for name, values in spans.items()}  # fmt: skip

    return stages


# --- limits --------------------------------------------------------------------------------------


def run_json(command: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_limits(cfg: Config, services: Services, receiver_port: int, receiver: ReceiverClient) -> dict[str, Any]:
    limits_py = str(ROOT / "bench" / "limits.py")
    seconds = str(cfg.limit_seconds)
    receiver.reset()
    http = run_json([PYTHON, limits_py, "http", "--port", str(receiver_port), "--seconds", seconds], 120)
    receiver.reset()
    services.create_database("bench_limits")
    url = services.pg_url("bench_limits")
    pg1 = run_json([PYTHON, limits_py, "pg", "--url", url, "--seconds", seconds, "--conns", "1"], 120)
    pg8 = run_json([PYTHON, limits_py, "pg", "--url", url, "--seconds", seconds, "--conns", "8"], 120)
    return {"http_keepalive_1conn": http, "pg_insert_1conn": pg1, "pg_insert_8conn": pg8}


# --- Sapien ----------------------------------------------------------------------------------------

ENVELOPE = json.dumps(
    {"id": "00000000-0000-0000-0000-000000000000", "type": "person.created", "version": "1.0",
     "timestamp": "2024-01-15T14:32:00.000Z", "organization_id": "", "data": {"name": "Bench", "notes": "x" * 600},
     "metadata": {"correlation_id": "bench", "triggered_by": "bench", "source": "api"}},
    separators=(",", ":"),
)  # fmt: skip


def sapien_run(
    cfg: Config, services: Services, broker: str, work: Path, sampler: MemorySampler, receiver: ReceiverClient,
    receiver_url: str, app_root: Path,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"broker": redact(services.broker_url(broker))}
    database = f"sapien_{broker}"
    services.create_database(database)
    stack = SapienStack(services, broker, work, sampler, app_root=app_root)
    stack.env["DATABASE_URL"] = services.pg_url(database)
    db_url = services.pg_url(database)
    log(f"[{broker}] migrating {database}")
    stack.migrate()
    stack.start()
    try:
        tenant = stack.side("tenant", "--name", f"bench-{broker}-a", "--subs", str(cfg.subs), "--callback",
                            f"{receiver_url}/sapien")  # fmt: skip
        token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
        api = f"{stack.base_url}/api/persons"
        out |= delivery_phases(cfg, receiver, sampler, api, token, person_body, f"[{broker}]",
                               lambda: profile_targets(stack.procs), stages=sapien_stages(db_url))  # fmt: skip

        out["f_isolation"] = isolation_phase(cfg, stack, receiver, sampler, receiver_url, broker,
                                             out["a_sustained"]["deliveries_per_s"] or 100.0)  # fmt: skip
        out["d_api"] = api_on_off(cfg, stack, receiver_url, broker)
        out["c_relay"] = relay_phase(cfg, stack, db_url, broker, receiver, receiver_url)
        # Last: the dead rows it leaves behind would slow the phases after it.
        out["g_held_transaction"] = held_transaction_phase(cfg, receiver, sampler, api, token, db_url, broker,
                                                           out["a_sustained"]["deliveries_per_s"])  # fmt: skip

        if cfg.soak:
            rate = round(min(cfg.soak_rate, 0.5 * (out["a_sustained"]["events_per_s"] or 20.0)), 1)
            out["soak"] = soak_phase(cfg, stack, receiver, api, token, sampler, broker, rate)
        dead = stack.check_alive()
        if dead:
            out["exited_processes"] = dead
    finally:
        stack.stop()
    return out


def profile_targets(running: dict[str, Proc]) -> dict[str, int]:
    """gunicorn workers, the Celery parent and pool processes, the relay: what py-spy should sample."""
    targets: dict[str, int] = {}
    for name, proc in running.items():
        pids = proc.group_pids()
        if name == "web":
            targets |= {f"web-worker{i}": pid for i, pid in enumerate(pids[1:], 1)}
        elif name == "worker":
            targets["celery-parent"] = pids[0]
            targets |= {f"celery-child{i}": pid for i, pid in enumerate(pids[1:], 1)}
        elif name == "relay":
            targets["relay"] = pids[0]
    return targets


ISOLATION_HEALTHY, ISOLATION_FAILING, ISOLATION_SLOW = 18, 2, 1  # ~10 % answering 500, ~5 % taking 2 s


def isolation_phase(
    cfg: Config, stack: SapienStack, receiver: ReceiverClient, sampler: MemorySampler, receiver_url: str,
    broker: str, sustained_deliveries_per_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Healthy subscriptions' first attempts, with and without failing and slow subscriptions beside them.

    Two organizations at the same event rate (half of (a)'s delivery rate over 21 subscriptions): one with
    18 healthy subscriptions only, one with the same 18 plus 2 answering 500 (retried) and 1 answering after
    2 s. Latency of the healthy subscriptions' first attempts, event timestamp -> receipt, in both.
    """
    subs = ISOLATION_HEALTHY + ISOLATION_FAILING + ISOLATION_SLOW
    rate = round(max(0.5 * sustained_deliveries_per_s / subs, 1.0), 1)
    bad = [f"{receiver_url}/fail?sub={i}" for i in range(ISOLATION_FAILING)]
    bad += [f"{receiver_url}/slow?sub={i}" for i in range(ISOLATION_SLOW)]
    out: dict[str, Any] = {"rate": rate, "healthy": ISOLATION_HEALTHY, "failing": ISOLATION_FAILING,
                           "slow": ISOLATION_SLOW}  # fmt: skip
    for label, extra in (("clean", []), ("mixed", bad)):
        args = ["tenant", "--name", f"bench-{broker}-f-{label}", "--subs", str(ISOLATION_HEALTHY),
                "--callback", f"{receiver_url}/healthy"]  # fmt: skip
        for url in extra:
            args += ["--extra-callback", url]
        tenant = stack.side(*args)
        token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
        log(f"[{broker}] (f) {label}: {rate} events/s x {ISOLATION_HEALTHY} healthy"
            f"{' + 2 failing + 1 slow' if extra else ''} subscriptions for {cfg.isolation_seconds:.0f} s")  # fmt: skip
        receiver.reset()
        count = max(int(rate * cfg.isolation_seconds), 1)
        load = run_load(f"{stack.base_url}/api/persons", token, person_body(f"iso-{broker}-{label}"), count=count,
                        threads=cfg.threads, rate=rate, max_seconds=cfg.isolation_seconds * 1.2 + 1)  # fmt: skip
        expected = load.ok * ISOLATION_HEALTHY
        healthy, others = collect(receiver, expected, "/healthy")
        first = [r for r in healthy if r[5] == "1"]
        summary = analyze(first, expected=expected, start=load.first_start)
        summary["other_requests"] = others
        out[label] = summary
        lat = summary["latency_ms"]
        log(f"    healthy first attempts p50/p95/p99 {lat['p50']}/{lat['p95']}/{lat['p99']} ms, "
            f"missing {summary['missing']}, {summary['other_requests']} requests to the failing and slow "
            "subscriptions")  # fmt: skip
        if extra:  # the failing subscriptions would go on retrying into the phases that follow
            with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
                conn.execute("UPDATE subscriptions_subscription SET active = false WHERE organization_id = %s",
                             (tenant["organization_id"],))  # fmt: skip
    out["p99_ratio_mixed_to_clean"] = ratio(out["mixed"]["latency_ms"]["p99"], out["clean"]["latency_ms"]["p99"])
    return out


def held_transaction_phase(
    cfg: Config, receiver: ReceiverClient, sampler: MemorySampler, api: str, token: str, db_url: str,
    broker: str, sustained_deliveries_per_s: float | None,
) -> dict[str, Any]:  # fmt: skip
    """(a)'s closed-loop workload while another session keeps one transaction (holding an XID) open.

    The open transaction stops VACUUM from removing dead rows anywhere in the database; throughput is
    reported per window over the hold and compared with (a).
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
            row = conn.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'deliveries_delivery'"
            ).fetchone()
    finally:
        holder.rollback()
        holder.close()
    expected = load.ok * cfg.subs
    records, _ = collect(receiver, expected, "/sapien")
    out = analyze(records, expected=expected, start=load.first_start) | {"cpu": meter.stop(work_items=len(records))}
    windows = 6
    span = cfg.hold_seconds / windows
    arrivals = sorted(record[0] for record in records)
    counts = [0] * windows
    for arrival in arrivals:
        index = int((arrival - load.first_start) / span)
        if 0 <= index < windows:
            counts[index] += 1
    out["hold_seconds"] = cfg.hold_seconds
    out["per_window_deliveries_per_s"] = [round(count / span, 1) for count in counts]
    out["dead_delivery_rows_at_end"] = row[0] if row else None
    out["load"] = load_summary(load)
    out["ratio_to_a"] = ratio(out["deliveries_per_s"], sustained_deliveries_per_s)
    out["last_window_ratio_to_a"] = ratio(out["per_window_deliveries_per_s"][-1], sustained_deliveries_per_s)
    log(f"    {fmt(out['deliveries_per_s'])} deliveries/s over the hold ({fx(out['ratio_to_a'])} of (a)); per window "
        f"{out['per_window_deliveries_per_s']}; missing {out['missing']}")  # fmt: skip
    return out


def api_on_off(cfg: Config, stack: SapienStack, receiver_url: str, broker: str) -> dict[str, Any]:
    """API create req/s, closed loop, for an organization without subscriptions: the write path's cost only."""
    tenant = stack.side("tenant", "--name", f"bench-{broker}-d", "--subs", "0", "--callback", f"{receiver_url}/x")
    token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
    api = f"{stack.base_url}/api/persons"
    runs: dict[str, Any] = {}
    rounds = 1 if cfg.quick else 2  # alternate on/off so that a burst of foreign load hits both sides
    for label, enabled in [(f"{flag} #{n}", flag) for n in range(1, rounds + 1) for flag in ("true", "false")]:
        stack.stop("web")
        stack.start("web", ESL_ENABLED=enabled)
        run_load(api, token, person_body("dw"), count=20 if cfg.quick else 40, threads=cfg.threads)  # warm-up
        meter = CpuMeter(stack.sampler)
        result = run_load(api, token, person_body("d"), count=cfg.api_requests, threads=cfg.threads)
        runs[label] = load_summary(result) | {"cpu": meter.stop(work_items=result.ok)}
        log(f"[{broker}] (d) ESL_ENABLED={enabled}: {result.rate:.0f} creates/s ({len(result.errors)} errors)")
    stack.stop("web")
    stack.start("web")  # back to the environment's own ESL_ENABLED for the phases that follow

    def mean(flag: str, key: str) -> float:
        values = [run[key] if key in run else run["cpu"].get(key) or 0.0 for label, run in runs.items()
                  if label.startswith(flag)]  # fmt: skip
        return sum(values) / len(values)

    on, off = mean("true", "req_per_s"), mean("false", "req_per_s")
    cpu_on, cpu_off = mean("true", "bench_cpu_ms_per_item"), mean("false", "bench_cpu_ms_per_item")
    return {"runs": runs, "on_req_per_s": on, "off_req_per_s": off, "ratio_on_off": ratio(on, off),
            "cpu_ms_on": cpu_on, "cpu_ms_off": cpu_off, "cpu_ratio_off_on": ratio(cpu_off, cpu_on)}  # fmt: skip


def relay_phase(
    cfg: Config, stack: SapienStack, db_url: str, broker: str, receiver: ReceiverClient, receiver_url: str
) -> dict[str, Any]:
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
            row = conn.execute("SELECT count(*) FROM events_event WHERE relayed_at IS NULL").fetchone()
            leftover = row[0] if row else 0
            conn.execute(
                "INSERT INTO events_event (id, organization_id, type, body, created_at, relayed_at, recipient_id)"
                " SELECT gen_random_uuid(), %s, 'person.created', %s, clock_timestamp(), NULL, NULL"
                " FROM generate_series(1, %s)",
                (org, ENVELOPE, n),
            )
            conn.execute("ANALYZE events_event")
        log(f"[{broker}] (c) relay_pending over {n} outbox rows x {cfg.subs} subscriptions")
        probe = stack.side("relay-probe")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM deliveries_delivery WHERE organization_id = %s AND event_id NOT IN"
                " (SELECT id FROM events_event WHERE organization_id = %s ORDER BY created_at LIMIT %s)",
                (org, org, cfg.drain_events),
            )
            conn.execute(
                "UPDATE deliveries_delivery SET next_attempt_at = now() + interval '1 day' WHERE organization_id = %s",
                (org,),
            )
    finally:
        stack.start("relay", "worker", "beat")
    drain = drain_phase(cfg, stack, db_url, org, broker, receiver)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM deliveries_deliveryattempt WHERE delivery_id IN"
            " (SELECT id FROM deliveries_delivery WHERE organization_id = %s)",
            (org,),
        )
        conn.execute("DELETE FROM deliveries_delivery WHERE organization_id = %s", (org,))
        conn.execute("DELETE FROM events_event WHERE organization_id = %s", (org,))
    baseline = run_json([PYTHON, str(ROOT / "bench" / "limits.py"), "relay-sql", "--url", db_url, "--events", str(n),
                         "--subs", str(cfg.subs), "--batch", str(probe["batch_size"])], 600)  # fmt: skip
    sapien_rate = probe["events"] / probe["seconds"]
    base_rate = baseline["events"] / baseline["seconds"]
    log(f"    relay {sapien_rate:.0f} events/s vs raw SQL {base_rate:.0f} events/s")
    return {
        "events": n, "leftover_before": leftover, "probe": probe, "baseline": baseline,
        "events_per_s": sapien_rate, "deliveries_per_s": probe["deliveries"] / probe["seconds"],
        "baseline_events_per_s": base_rate, "baseline_deliveries_per_s": baseline["deliveries"] / baseline["seconds"],
        "ratio_to_baseline": ratio(sapien_rate, base_rate), "drain": drain,
    }  # fmt: skip


def drain_phase(
    cfg: Config, stack: SapienStack, db_url: str, org: str, broker: str, receiver: ReceiverClient
) -> dict[str, Any]:
    """Delivery capacity without the API: held-back deliveries released at once, timed at the receiver."""
    time.sleep(3)  # the worker and beat connect to the broker
    receiver.reset()
    meter = CpuMeter(stack.sampler)
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "WITH released AS (UPDATE deliveries_delivery SET next_attempt_at = now() WHERE organization_id = %s"
            " RETURNING 1) SELECT count(*) FROM released",
            (org,),
        ).fetchone()
    released_at = time.time()
    expected = row[0] if row else 0
    log(f"[{broker}] (a2) delivery drain: {expected} deliveries released at once (woken by beat's 1 s sweep)")
    receiver.wait_for(expected, drain_timeout(expected))
    records = receiver.dump()
    out = analyze(records, expected=expected, start=released_at) | {"cpu": meter.stop(work_items=len(records))}
    arrivals = sorted(record[0] for record in records)
    out["first_receipt_after_s"] = round(arrivals[0] - released_at, 3) if arrivals else None
    out["first_to_last_per_s"] = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None
    log(f"    {fmt(out['first_to_last_per_s'])} deliveries/s first->last receipt, missing {out['missing']}")
    return out


def soak_phase(
    cfg: Config, stack: SapienStack, receiver: ReceiverClient, api: str, token: str, sampler: MemorySampler,
    broker: str, rate: float,
) -> dict[str, Any]:  # fmt: skip
    """A moderate rate (half of (a)'s event rate, at most 50/s) for 10 minutes; RSS sampled every 5 s."""
    count = int(rate * cfg.soak_seconds)
    log(f"[{broker}] (e) soak: {rate:.1f} events/s for {cfg.soak_seconds:.0f} s")
    receiver.reset()
    sampler.series = []
    sampler.record_series = True
    holder: dict[str, LoadResult] = {}

    def load() -> None:
        holder["load"] = run_load(api, token, person_body(f"soak-{broker}"), count=count, threads=cfg.threads,
                                  rate=rate, max_seconds=cfg.soak_seconds + 60)  # fmt: skip

    thread = threading.Thread(target=load, daemon=True)
    started = time.time()
    thread.start()
    latencies: list[float] = []
    seen: set[str] = set()
    received = 0

    def absorb(batch: list[list[Any]]) -> None:
        nonlocal received
        received += len(batch)
        for record in batch:
            seen.add(record[1])
            if record[3] is not None:
                latencies.append(record[0] - record[3])

    deadline = time.monotonic() + cfg.soak_seconds + 120
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(30)
        absorb(receiver.dump())  # keeps the receiver's memory flat
    thread.join(5)
    result = holder.get("load")
    expected = (result.ok if result else 0) * cfg.subs
    receiver.wait_for(expected - len(seen), drain_timeout(expected))
    absorb(receiver.dump())
    sampler.record_series = False
    growth = rss_growth(sampler.series, started + 60)
    for key, value in growth.items():
        label, _, pid = key.rpartition("/")
        value["process"] = sampler.labels.get((label, int(pid)), "")
    missing = max(expected - len(seen), 0)
    log(f"    soak: {len(seen)}/{expected} delivered, missing {missing}")
    return {
        "rate": rate, "seconds": cfg.soak_seconds, "expected": expected, "unique": len(seen),
        "duplicates": received - len(seen), "missing": missing,
        "latency_ms": {"p50": ms(pct(latencies, 0.5)), "p95": ms(pct(latencies, 0.95)),
                       "p99": ms(pct(latencies, 0.99))},
        "load": load_summary(result) if result else None, "rss_growth": growth,
    }  # fmt: skip


def rss_growth(series: list[tuple[float, dict[str, int]]], after: float) -> dict[str, Any]:
    """RSS per process after the first minute vs at the end (MB and %)."""
    warm = next((point for moment, point in series if moment >= after), None)
    if warm is None or not series:
        return {}
    end = series[-1][1]
    out = {}
    for key, start_kb in warm.items():
        if key in end and start_kb:
            out[key] = {"after_1min_mb": round(start_kb / 1024, 1), "end_mb": round(end[key] / 1024, 1),
                        "growth_pct": round(100 * (end[key] - start_kb) / start_kb, 1)}  # fmt: skip
    return out


# --- peer ----------------------------------------------------------------------------------------


def peer_run(
    cfg: Config, services: Services, broker: str, work: Path, sampler: MemorySampler, receiver: ReceiverClient,
    receiver_url: str,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"package": "django-webhook 0.0.15"}
    database = f"peer_{broker}"
    services.create_database(database)
    log(f"[{broker}] peer: django-webhook (venv bench/.peer-venv)")
    peer = PeerStack(work, services.pg_url(database), services.broker_url(broker, redis_db=1), broker, sampler)
    peer.prepare(f"{receiver_url}/peer", cfg.subs)
    peer.start()
    try:
        api = f"{peer.base_url}/persons"
        out |= delivery_phases(cfg, receiver, sampler, api, None, peer_body, f"[{broker}] peer",
                               lambda: profile_targets(peer.procs))  # fmt: skip
        dead = peer.check_alive()
        if dead:
            out["exited_processes"] = dead
    finally:
        peer.stop()
    return out


# --- report --------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def fx(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)))
    print("  " + "  ".join("-" * width for width in widths))
    for row in rows:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def report(results: dict[str, Any]) -> None:
    limits = results.get("limits", {})
    http = limits.get("http_keepalive_1conn", {})
    pg1, pg8 = limits.get("pg_insert_1conn", {}), limits.get("pg_insert_8conn", {})
    table("Physical limits (same run)", ["probe", "rate", "p50"], [
        ["HTTP POST, 1 keep-alive conn (http.client) -> receiver", f"{fmt(http.get('rps'))} req/s",
         f"{fmt(http.get('p50_ms'), 3)} ms"],
        ["PG single-row INSERT, 1 conn, autocommit", f"{fmt(pg1.get('rows_per_s'))} rows/s",
         f"{fmt(pg1.get('p50_ms'), 3)} ms"],
        ["PG single-row INSERT, 8 conns, autocommit", f"{fmt(pg8.get('rows_per_s'))} rows/s",
         f"{fmt(pg8.get('p50_ms'), 3)} ms"],
    ])  # fmt: skip
    for broker, run in results.get("brokers", {}).items():
        sapien, peer = run.get("sapien") or {}, run.get("peer") or {}
        if "error" in sapien:
            print(f"\n[{broker}] Sapien run failed: {sapien['error']}")
            continue
        a, pa = sapien.get("a_sustained", {}), peer.get("a_sustained", {})
        pa_rate = pa.get("deliveries_per_s")
        table(f"[{broker}] (a) sustained end-to-end, {a.get('events')} events x {results['config']['subs']} subs", [
            "system", "deliveries/s", "events/s", "API writes/s", "missing", "dups", "CPU ms/delivery",
            "foreign cores", "vs peer", "vs HTTP limit"], [
            [who, fmt(x.get("deliveries_per_s")), fmt(x.get("events_per_s")), fmt(x.get("load", {}).get("req_per_s")),
             fmt(x.get("missing")), fmt(x.get("duplicates")), fmt(x.get("cpu", {}).get("bench_cpu_ms_per_item"), 2),
             fmt(x.get("cpu", {}).get("foreign_cores"), 2), fx(ratio(x.get("deliveries_per_s"), pa_rate)),
             fx(ratio(x.get("deliveries_per_s"), http.get("rps")))]
            for who, x in (("Sapien", a), ("django-webhook", pa)) if x
        ])  # fmt: skip
        groups = sorted({g for x in (a, pa) for g in x.get("cpu", {}).get("cpu_seconds_by_group", {})})
        table(
            f"[{broker}] (a) CPU seconds by process during the phase",
            ["process group", "Sapien run", "peer run"],
            [
                [
                    g,
                    fmt(a.get("cpu", {}).get("cpu_seconds_by_group", {}).get(g), 2),
                    fmt(pa.get("cpu", {}).get("cpu_seconds_by_group", {}).get(g), 2),
                ]
                for g in groups
                if any(x.get("cpu", {}).get("cpu_seconds_by_group", {}).get(g) for x in (a, pa))
            ],
        )
        rows = []
        for who, phases in (("Sapien", sapien.get("b_latency", [])), ("django-webhook", peer.get("b_latency", []))):
            for index, phase in enumerate(phases):
                lat = phase["latency_ms"]
                other = (peer if who == "Sapien" else {}).get("b_latency", [])
                peer_p99 = other[index]["latency_ms"]["p99"] if index < len(other) else None
                rows.append([who, f"{phase['label']} = {fmt(phase['target_rate'], 1)}/s",
                             fmt(phase.get("achieved_rate"), 1), fmt(lat["p50"], 1), fmt(lat["p95"], 1),
                             fmt(lat["p99"], 1), fmt(lat["max"], 1), fmt(phase["missing"]),
                             fmt(phase["cpu"]["foreign_cores"], 2),
                             fx(ratio(lat["p99"], peer_p99)), fx(ratio(lat["p50"], http.get("p50_ms")))])  # fmt: skip
        table(f"[{broker}] (b) latency event timestamp -> receipt (ms)", [
            "system", "rate", "achieved/s", "p50", "p95", "p99", "max", "missing", "foreign cores", "p99 vs peer",
            "p50 vs 1 HTTP round trip"], rows)  # fmt: skip
        c = sapien.get("c_relay", {})
        if c:
            table(f"[{broker}] (c) relay, {c['events']} outbox rows x {results['config']['subs']} subs", [
                "relay", "events/s", "delivery rows/s", "vs raw SQL", "vs peer"], [
                ["Sapien relay_pending", fmt(c["events_per_s"]), fmt(c["deliveries_per_s"]),
                 fx(c["ratio_to_baseline"]), "n/a (peer has no outbox)"],
                ["raw SQL DELETE..SKIP LOCKED -> INSERT", fmt(c["baseline_events_per_s"]),
                 fmt(c["baseline_deliveries_per_s"]), "1.00x", ""],
            ])  # fmt: skip
        drain = c.get("drain") if c else None
        if drain:
            cpu = drain["cpu"]
            worker_cpu = sum(v for k, v in cpu["cpu_seconds_by_group"].items() if k.endswith(".worker"))
            table(f"[{broker}] (a2) delivery side alone: {drain['expected']} due deliveries released at once", [
                "deliveries/s (first->last receipt)", "missing", "dups", "first receipt after",
                "worker CPU ms/delivery",
                "CPU ms/delivery (all)", "foreign cores", "vs HTTP limit"], [[
                fmt(drain["first_to_last_per_s"]), fmt(drain["missing"]), fmt(drain["duplicates"]),
                f"{fmt(drain['first_receipt_after_s'], 2)} s",
                fmt(1000 * worker_cpu / max(drain["unique"], 1), 2), fmt(cpu.get("bench_cpu_ms_per_item"), 2),
                fmt(cpu["foreign_cores"], 2), fx(ratio(drain["first_to_last_per_s"], http.get("rps")))]])  # fmt: skip
        f = sapien.get("f_isolation", {})
        if f:
            clean_p99 = f["clean"]["latency_ms"]["p99"]
            table(f"[{broker}] (f) healthy subscriptions' first attempts at {f['rate']} events/s: {f['healthy']} "
                  f"healthy alone, then beside {f['failing']} answering 500 and {f['slow']} taking 2 s", [
                "run", "p50 ms", "p95 ms", "p99 ms", "max ms", "missing", "requests to bad subs", "p99 vs clean"], [
                [label, *(fmt(f[label]["latency_ms"][q], 1) for q in ("p50", "p95", "p99", "max")),
                 fmt(f[label]["missing"]), fmt(f[label]["other_requests"]),
                 fx(ratio(f[label]["latency_ms"]["p99"], clean_p99))]
                for label in ("clean", "mixed")])  # fmt: skip
        g = sapien.get("g_held_transaction", {})
        if g:
            table(f"[{broker}] (g) (a)'s workload while one transaction stays open for {g['hold_seconds']:.0f} s", [
                "deliveries/s", "vs (a)", "per window (deliveries/s)", "last window vs (a)", "dead delivery rows",
                "missing", "dups"], [[
                fmt(g["deliveries_per_s"]), fx(g["ratio_to_a"]),
                " ".join(fmt(v) for v in g["per_window_deliveries_per_s"]),
                fx(g["last_window_ratio_to_a"]), fmt(g["dead_delivery_rows_at_end"]), fmt(g["missing"]),
                fmt(g["duplicates"])]])  # fmt: skip
        d = sapien.get("d_api", {})
        if d:
            table(f"[{broker}] (d) API create, closed loop, {results['config']['threads']} threads, no subscriptions", [
                "ESL_ENABLED", "creates/s", "p50 ms", "p99 ms", "CPU ms/create", "foreign cores", "vs off",
                "vs PG INSERT 8 conns"],
                [[label, fmt(run_["req_per_s"]), fmt(run_["p50_ms"], 1), fmt(run_["p99_ms"], 1),
                  fmt(run_["cpu"].get("bench_cpu_ms_per_item"), 2), fmt(run_["cpu"]["foreign_cores"], 2),
                  fx(ratio(run_["req_per_s"], d["off_req_per_s"])),
                  fx(ratio(run_["req_per_s"], pg8.get("rows_per_s")))]
                 for label, run_ in d["runs"].items()])  # fmt: skip
            print(
                f"  ratio on/off, creates/s (means): {fx(d['ratio_on_off'])}; by CPU per create (off/on): "
                f"{fx(d['cpu_ratio_off_on'])} ({fmt(d['cpu_ms_on'], 2)} vs {fmt(d['cpu_ms_off'], 2)} ms)"
            )
        if peer.get("error"):
            print(f"\n[{broker}] peer: {peer['error']}")
        soak = sapien.get("soak")
        if soak:
            print(f"\n[{broker}] (e) soak {soak['rate']:.1f} events/s x {soak['seconds']:.0f} s: "
                  f"{soak['unique']}/{soak['expected']} delivered, missing {soak['missing']}, "
                  f"p50/p99 {soak['latency_ms']['p50']}/{soak['latency_ms']['p99']} ms")  # fmt: skip
            table("  RSS growth, after 1 min -> end (PostgreSQL's RSS includes the shared buffers it touched)",
                  ["group/pid", "process", "MB after 1 min", "MB at end", "growth"], [
                [key, value.get("process", "")[:50], fmt(value["after_1min_mb"], 1), fmt(value["end_mb"], 1),
                 f"{value['growth_pct']:+.1f}%"]
                for key, value in soak["rss_growth"].items()])  # fmt: skip
    rss_table(results.get("rss", []))
    for broker, run in results.get("brokers", {}).items():
        for who in ("sapien", "peer"):
            profile = ((run.get(who) or {}).get("a_sustained") or {}).get("profile")
            if profile:
                profile_report(f"[{broker}] {who}", profile)
    print(f"\nAll processes: {results.get('totals', {})}")


def profile_report(title: str, profile: dict[str, Any]) -> None:
    print(f"\n{title}: py-spy during (a), share of each process's samples")
    for process, summary in profile.items():
        if not summary:
            continue
        print(f"  {process} ({int(summary['samples'][0][1])} samples)")
        for key, label, count in (("by_package", "running code in", 8), ("self", "hottest frames", 5),
                                  ("app_total", "app code incl. callees", 10)):  # fmt: skip
            print(f"    {label}: " + "; ".join(f"{share:.0%} {frame}" for frame, share in summary[key][:count]))


def rss_table(rss: list[dict[str, Any]]) -> None:
    """Peak RSS per process group: the leader (gunicorn master, Celery parent, ...) and its children."""
    by_group: dict[str, dict[str, list[float]]] = {}
    for row in rss:
        kind = "leader" if row["process"] == "leader" else "child"
        by_group.setdefault(row["group"], {"leader": [], "child": []})[kind].append(row["peak_mb"])
    peer = {g.split(".", 1)[-1]: v for g, v in by_group.items() if g.startswith("peer-")}
    rows = []
    for group, peaks in by_group.items():
        leader, child = max(peaks["leader"], default=None), max(peaks["child"], default=None)
        other = peer.get(group.split(".", 1)[-1]) if group.startswith("sapien-") else None
        rows.append([
            group, str(len(peaks["leader"])), fmt(leader, 1), str(len(peaks["child"])), fmt(child, 1),
            fx(ratio(leader, max(other["leader"], default=None))) if other else "",
            fx(ratio(child, max(other["child"], default=None))) if other else "",
        ])  # fmt: skip
    table("(e) peak RSS (VmHWM, MB); leader = gunicorn master / Celery parent / the process; children = workers",
          ["group", "starts", "leader", "children", "child max", "leader vs peer", "child vs peer"], rows)  # fmt: skip


# --- main ----------------------------------------------------------------------------------------


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"{time.monotonic() - _T0:6.1f}s {message}", file=sys.stderr, flush=True)


def environment(services: Services) -> dict[str, Any]:
    with psycopg.connect(services.pg_url("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT version()").fetchone()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=False)  # fmt: skip
    return {
        "python": platform.python_version(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "postgres": row[0] if row else None, "git_commit": commit.stdout.strip(),
        "git_dirty_files": len(dirty.stdout.splitlines()),
        "esl_env": {key: value for key, value in os.environ.items() if key.startswith("ESL_")},
    }  # fmt: skip


def rss_rows(sampler: MemorySampler) -> list[dict[str, Any]]:
    return [
        {"group": label, "pid": pid, "process": sampler.labels.get((label, pid), ""), "peak_mb": round(kb / 1024, 1)}
        for (label, pid), kb in sorted(sampler.peak_kb.items())
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny numbers, redis only, no peer")
    parser.add_argument("--soak", action="store_true", help="add a 10-minute soak at a moderate rate")
    parser.add_argument("--broker", choices=["redis", "amqp", "both"], help="default: both (redis with --quick)")
    parser.add_argument("--events", type=int, help="K events for (a) (default 2000; 50 with --quick)")
    parser.add_argument("--subs", type=int, help="M subscriptions (default 3; 2 with --quick)")
    parser.add_argument("--no-peer", action="store_true", help="skip the django-webhook peer")
    parser.add_argument("--peer", action="store_true", help="run the peer even with --quick")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    parser.add_argument("--profile", action="store_true", help="py-spy the pipeline during (a) (needs py-spy)")
    parser.add_argument("--ref", help="benchmark this git revision (exported with git archive) instead of the "
                        "working tree, e.g. --ref HEAD while the working tree is being edited")  # fmt: skip
    args = parser.parse_args(argv)
    cfg = build_config(args)
    started_at = datetime.now(UTC)
    stamp = f"{started_at.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if cfg.quick else ''}"
    if args.profile:
        if py_spy() is None:
            log("--profile needs py-spy: .venv/bin/pip install py-spy")
            return 2
        cfg.profile_dir = RESULTS / f"{stamp}-profiles"
    amqp_url = os.environ.get("ESL_BENCH_AMQP_URL", DEFAULT_AMQP)
    broker_choice = args.broker or ("redis" if cfg.quick else "both")
    brokers = ["redis", "amqp"] if broker_choice == "both" else [broker_choice]
    notes: list[str] = []
    if "amqp" in brokers and not amqp_answers(amqp_url):
        if broker_choice == "amqp":
            log(f"RabbitMQ does not answer at {redact(amqp_url)}")
            return 2
        brokers.remove("amqp")
        notes.append(f"RabbitMQ did not answer at {redact(amqp_url)}: amqp runs skipped")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks below
    work = Path(tempfile.mkdtemp(prefix="sapien-bench-"))
    os.chmod(work, 0o755)  # the embedded PostgreSQL runs as another user when we are root
    results: dict[str, Any] = {"started_at": started_at.isoformat(), "config": vars(cfg) | {"brokers": brokers},
                               "brokers": {}, "notes": notes}  # fmt: skip
    sampler = MemorySampler(interval=1.0 if not cfg.soak else 5.0)
    services: Services | None = None
    failed = False
    t0 = time.monotonic()
    try:
        sampler.start()
        receiver_port = free_port()
        receiver_proc = Proc("receiver", [PYTHON, str(ROOT / "bench" / "receiver.py"), "--port", str(receiver_port)],
                             dict(os.environ), work)  # fmt: skip
        wait_port(receiver_port, 30, receiver_proc)
        sampler.watch("receiver", receiver_proc.pid)
        receiver = ReceiverClient(receiver_port)
        receiver_url = f"http://{HOST}:{receiver_port}"
        app_root = export_revision(args.ref, work) if args.ref else ROOT
        results["code"] = f"git {args.ref}" if args.ref else "working tree"
        log(f"work dir {work}; starting embedded PostgreSQL and Redis")
        services = Services(work / "services", amqp_url if "amqp" in brokers else None)
        services.watch(sampler)
        results["environment"] = environment(services)
        log("physical limits")
        results["limits"] = measure_limits(cfg, services, receiver_port, receiver)
        for broker in brokers:
            entry: dict[str, Any] = {}
            results["brokers"][broker] = entry
            try:
                entry["sapien"] = sapien_run(cfg, services, broker, work, sampler, receiver, receiver_url, app_root)
            except Exception as exc:
                failed = True
                entry["sapien"] = {"error": f"{type(exc).__name__}: {exc}"}
                log(traceback.format_exc())
            if cfg.peer:
                try:
                    entry["peer"] = peer_run(cfg, services, broker, work, sampler, receiver, receiver_url)
                except Exception as exc:
                    entry["peer"] = {"error": f"django-webhook could not be run: {type(exc).__name__}: {exc}"}
                    log(traceback.format_exc())
        sampler.sample()
        results["rss"] = rss_rows(sampler)
        results["totals"] = {"wall_seconds": round(time.monotonic() - t0, 1)}
    except BaseException as exc:
        failed = True
        results["error"] = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            log(traceback.format_exc())
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            log("interrupted; stopping everything")
    finally:
        sampler.stop()
        procs.stop_everything()
        if services is not None:
            services.close()
        if args.keep or failed:
            log(f"kept {work} (logs in {work}/logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    if "error" not in results:
        report(results)
    missing = lost_deliveries(results)
    print(f"\nresults: {path.relative_to(ROOT)}")
    for note in notes:
        print(f"note: {note}")
    if failed or "error" in results:
        print(f"FAILED: {results.get('error') or 'a Sapien run failed (see above)'}")
        return 1
    if missing:
        print(f"LOST: {missing} Sapien deliveries missing")
        return 1
    print("0 missing")
    return 0


def export_revision(ref: str, work: Path) -> Path:
    """``git archive`` of ``ref`` into the work dir: read-only for the repository."""
    target = work / "src"
    target.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def lost_deliveries(results: dict[str, Any]) -> int:
    total = 0
    for run in results.get("brokers", {}).values():
        sapien = run.get("sapien") or {}
        isolation = sapien.get("f_isolation") or {}
        phases = [sapien.get("a_sustained") or {}, *(sapien.get("b_latency") or []), sapien.get("soak") or {},
                  (sapien.get("c_relay") or {}).get("drain") or {}, isolation.get("clean") or {},
                  isolation.get("mixed") or {}, sapien.get("g_held_transaction") or {}]  # fmt: skip
        total += sum(int(phase.get("missing", 0)) for phase in phases) + int(sapien.get("warmup_missing", 0))
    return total


if __name__ == "__main__":
    sys.exit(main())
