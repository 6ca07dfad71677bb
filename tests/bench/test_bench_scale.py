"""``make bench BENCH_ARGS=--scale`` works on this machine: at two tiny sizes every figure is printed and none failed.

No figure is judged here (timings belong to the bench, not to the suite), nor is any goal.
"""

import json
import os
import subprocess
import sys

import pytest

from bench.phases.scale import FIGURES
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def test_a_scale_run_at_two_tiny_sizes_prints_every_figure_and_none_failed() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ESL_", "DATABASE_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "--scale-sizes", "1000,5000", "--scale-repeats", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "0 failed"
    for name in FIGURES.values():
        assert name in done.stdout, name
    results = ROOT / next(line.split(": ", 1)[1] for line in lines if line.startswith("results: "))
    sizes = json.loads(results.read_text())["scale"]["sizes"]
    assert [size["deliveries"] for size in sizes] == [1000, 5000]
    for size in sizes:
        assert set(size["figures"]) == set(FIGURES)
        assert all(figure["error"] is None and figure["samples_ms"] for figure in size["figures"].values())
    assert sizes[-1]["figures"]["claim_due"]["detail"].startswith("100 ")  # the due rows were claimed
    results.unlink()
