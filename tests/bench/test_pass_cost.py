"""``python -m bench.pass_cost`` works on this machine: a tiny run against the real receiver and an embedded
PostgreSQL sends every delivery, and prints each stage's CPU, this process's and PostgreSQL's.

No figure is judged here (timings belong to the bench, not to the suite).
"""

import json
import os
import subprocess
import sys

import pytest

from bench.pass_cost import STAGES, WARM_UP_EVENTS
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def test_a_tiny_pass_cost_run_sends_every_delivery_and_reports_every_stage() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ESL_", "DATABASE_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.pass_cost", "--events", "20", "--subs", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stage in (*STAGES, "total"):
        assert f"\n  {stage} " in done.stdout, stage
    results = ROOT / next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("results: "))
    figures = json.loads(results.read_text())
    results.unlink()
    assert (figures["events"], figures["subscriptions"], figures["errors"]) == (20, 2, 0)
    assert figures["deliveries_succeeded"] == figures["deliveries_expected"] == (WARM_UP_EVENTS + 20) * 2
    assert set(figures["python_ms_per_event"]) == set(STAGES)
    assert all(ms > 0 for ms in figures["python_ms_per_event"].values())
    assert set(figures["postgres_ms_per_event"]) == set(STAGES)  # the embedded PostgreSQL runs on this machine
