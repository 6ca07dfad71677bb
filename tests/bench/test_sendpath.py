"""``python -m bench.sendpath`` works on this machine: a tiny run against the real receiver and an embedded
PostgreSQL times every stage, sends everything with a 200, and prints the table.

No figure is judged here (timings belong to the bench, not to the suite).
"""

import json
import os
import subprocess
import sys

import pytest

from bench.report import SENDPATH_ROWS
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def test_a_tiny_send_path_run_times_every_stage_and_sends_everything() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ESL_", "DATABASE_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.sendpath", "--deliveries", "30", "--subs", "2", "--repeats", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for label in SENDPATH_ROWS.values():
        assert label in done.stdout, label
    assert "skipped" not in done.stdout
    results = ROOT / next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("results: "))
    figures = json.loads(results.read_text())
    results.unlink()
    assert (figures["deliveries"], figures["subscriptions"], figures["repeats"]) == (30, 2, 2)
    assert figures["errors"] == 0  # every delivery was prepared, sent and answered 200
    assert figures["skipped"] == {}
    assert figures["total_stages"] == ["prepare", "send", "decide", "record"]
    assert set(figures["stages"]) == set(SENDPATH_ROWS)
    assert len(figures["rounds"]) == 2
    for stage in figures["stages"].values():
        assert set(stage) == {"cpu_us", "thread_cpu_us", "wall_us"}
        assert stage["cpu_us"] > 0 and stage["wall_us"] > 0
    stages = figures["stages"]
    assert stages["record_outside_db"]["cpu_us"] <= stages["record"]["cpu_us"]
    total = sum(stages[key]["cpu_us"] for key in figures["total_stages"])
    # two rounds: each median is a mean, so the total's is the sum of the stages' (each rounded to 0.1 us)
    assert stages["total"]["cpu_us"] == pytest.approx(total, abs=0.5)
    assert figures["cpu_ratio_to_bare"] > 0
    assert figures["body_bytes"] > 500  # the ~1 KB envelope of (a), not an empty body
