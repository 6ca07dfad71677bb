"""``python -m bench``: the run. Flags -> ``Config``; the services and the receiver; the physical limits; per
broker Sapien's phases, then the peer's (or, with --scale, the scale phase alone); the results file, the report and
the exit status."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

import bench
from bench import procs
from bench.config import build_config, parser
from bench.phases.limits import measure_limits
from bench.procs import HOST, RECEIVER_GROUP, ROOT, MemorySampler, Proc, export_revision, free_port, wait_port
from bench.profile import py_spy
from bench.progress import log
from bench.receiving import ReceiverClient
from bench.report import report
from bench.results import BrokerRun, Failed, Limits, PeerRun, Results, RssRow, SapienRun, ScaleRun
from bench.stack import DEFAULT_AMQP, Services, amqp_answers, redact
from bench.systems import peer_run, sapien_run, scale_run

PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    args = parser(bench.__doc__).parse_args(argv)
    cfg = build_config(args)
    started_at = datetime.now(UTC)
    stamp = f"{started_at.strftime('%Y%m%dT%H%M%SZ')}{'-scale' if cfg.scale_sizes else '-quick' if cfg.quick else ''}"
    if args.profile:
        if py_spy() is None:
            log("--profile needs py-spy: .venv/bin/pip install py-spy")
            return 2
        cfg = replace(cfg, profile_dir=RESULTS / f"{stamp}-profiles")
    amqp_url = os.environ.get("ESL_BENCH_AMQP_URL", DEFAULT_AMQP)
    broker_choice = "redis" if cfg.scale_sizes else args.broker or ("redis" if cfg.quick else "both")
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
    sampler = MemorySampler(interval=1.0 if not cfg.soak else 5.0)
    services: Services | None = None
    # What the run got to, for the results file even when it stops half-way.
    code: str | None = None
    env: dict[str, Any] | None = None
    limits: Limits | None = None
    runs: dict[str, BrokerRun] = {}
    scale: ScaleRun | Failed | None = None
    rss: list[RssRow] = []
    group_pss: dict[str, float] = {}
    totals: dict[str, float] = {}
    error: str | None = None
    failed = False
    t0 = time.monotonic()
    try:
        sampler.start()
        receiver_port = free_port()
        receiver_command = [PYTHON, str(ROOT / "bench" / "receiver.py"), "--port", str(receiver_port)]
        receiver_proc = Proc(RECEIVER_GROUP, receiver_command, dict(os.environ), work)
        wait_port(receiver_port, 30, receiver_proc)
        sampler.watch(RECEIVER_GROUP, receiver_proc.pid)
        receiver = ReceiverClient(receiver_port)
        receiver_url = f"http://{HOST}:{receiver_port}"
        app_root = export_revision(args.ref, work) if args.ref else ROOT
        code = f"git {args.ref}" if args.ref else "working tree"
        log(f"work dir {work}; starting embedded PostgreSQL and Redis")
        services = Services(work / "services", amqp_url if "amqp" in brokers else None)
        services.watch(sampler)
        env = environment(services)
        if cfg.scale_sizes:
            try:
                scale = scale_run(cfg, services, work, sampler, receiver, receiver_url, app_root)
                failed = bool(scale.failed_figures())
            except Exception as exc:
                failed = True
                scale = Failed(f"{type(exc).__name__}: {exc}")
                log(traceback.format_exc())
        else:
            log("physical limits")
            limits = measure_limits(cfg, services, receiver_port, receiver)
        for broker in brokers if not cfg.scale_sizes else []:
            sapien: SapienRun | Failed
            try:
                sapien = sapien_run(cfg, services, broker, work, sampler, receiver, receiver_url, app_root)
            except Exception as exc:
                failed = True
                sapien = Failed(f"{type(exc).__name__}: {exc}")
                log(traceback.format_exc())
            runs[broker] = BrokerRun(sapien=sapien)
            if cfg.peer:
                peer: PeerRun | Failed
                try:
                    peer = peer_run(cfg, services, broker, work, sampler, receiver, receiver_url)
                except Exception as exc:
                    peer = Failed(f"django-webhook could not be run: {type(exc).__name__}: {exc}")
                    log(traceback.format_exc())
                runs[broker] = BrokerRun(sapien=sapien, peer=peer)
        sampler.sample()
        sampler.last_seen()
        rss = rss_rows(sampler)
        group_pss = {label: round(kb / 1024, 1) for label, kb in sampler.group_pss_kb.items()}
        totals = {"wall_seconds": round(time.monotonic() - t0, 1)}
    except BaseException as exc:
        failed = True
        error = f"{type(exc).__name__}: {exc}"
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

    results = Results(started_at=started_at.isoformat(), config=cfg, broker_names=brokers, brokers=runs, notes=notes,
                      code=code, environment=env, limits=limits, rss=rss, group_pss_mb=group_pss, totals=totals,
                      error=error, scale=scale)  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(results.as_json(), indent=2, default=str))
    if results.error is None:
        report(results)
    missing = results.lost_deliveries()
    print(f"\nresults: {path.relative_to(ROOT)}")
    for note in notes:
        print(f"note: {note}")
    if failed or results.error is not None:
        print(f"FAILED: {results.error or 'a Sapien run or a figure failed (see above)'}")
        return 1
    if isinstance(scale, ScaleRun):
        print("0 failed")
        return 0
    if missing:
        print(f"LOST: {missing} Sapien deliveries missing")
        return 1
    print("0 missing")
    return 0


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


def rss_rows(sampler: MemorySampler) -> list[RssRow]:
    rows = []
    for (label, pid), kb in sorted(sampler.peak_kb.items()):
        rss, pss = sampler.last_kb.get((label, pid), (None, None))
        rows.append(RssRow(group=label, pid=pid, process=sampler.labels.get((label, pid), ""),
                           peak_mb=round(kb / 1024, 1), rss_mb=None if rss is None else round(rss / 1024, 1),
                           pss_mb=None if pss is None else round(pss / 1024, 1)))  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
