"""``make bench`` works on this machine: a smoke run with tiny numbers prints every figure and loses nothing.

No figure is judged here (timings belong to the bench, not to the suite); the run must finish, print each
table, and end with ``0 missing``.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e

TABLES = [
    "Physical limits (same run)",
    "(a) sustained end-to-end",
    "(b) latency event timestamp -> receipt",
    "(c) relay",
    "(a2) delivery side alone",
    "(d) API create",
    "(e) memory (MB): peak RSS (VmHWM) over the run; RSS and PSS",
    "writes per delivery (PostgreSQL's counters",
    "writes per delivery by table",
    "(f) healthy subscriptions' first attempts",
    "(g) (a)'s workload while one transaction stays open",
    "the cost goals in this run",
]


def test_a_quick_bench_run_prints_every_figure_and_loses_nothing(tmp_path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ESL_", "DATABASE_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "0 missing"
    for title in TABLES:
        assert title in done.stdout, title
    results = ROOT / next(line.split(": ", 1)[1] for line in lines if line.startswith("results: "))
    figures = json.loads(results.read_text())["brokers"]["redis"]["sapien"]
    assert figures["a_sustained"]["unique"] == figures["a_sustained"]["expected"] > 0
    cpu = figures["a_sustained"]["cpu"]  # the system alone: without the receiver and the bench's own load
    assert 0 < cpu["system_cpu_ms_per_item"] < cpu["bench_cpu_ms_per_item"] and cpu["own_cpu_seconds"] > 0
    assert figures["f_isolation"]["mixed"]["other_requests"] > 0  # the failing and slow receivers were reached
    assert all(stage["n"] > 0 for stage in figures["b_latency"][0]["stages_ms"].values())
    for writes in (figures["a_sustained"]["writes"], figures["c_relay"]["drain"]["writes"]):
        assert set(writes["tables"]) == {"events_event", "deliveries_delivery", "deliveries_deliveryattempt", "others"}
        assert writes["deliveries"] > 0 and writes["settled"]
        assert writes["rows"] > 0 and writes["index_entries"] > 0 and writes["wal_bytes"] > 0
    assert figures["c_relay"]["drain"]["writes"]["subtracted"]  # the bench's own release is taken out
    run = json.loads(results.read_text())
    web = [row for row in run["rss"] if row["group"] == "sapien-redis.web" and row["pss_mb"] is not None]
    assert web and all(0 < row["pss_mb"] <= row["rss_mb"] for row in web)  # read just before gunicorn stopped
    assert run["group_pss_mb"]["sapien-redis.web"] > 0
    results.unlink()
