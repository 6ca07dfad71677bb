"""``python -m bench.filters`` measures what it says: its baseline is the relay statement without the payload
filter parts (and still a working relay statement), and a tiny run relays every event of every variant.

No figure is judged here (timings belong to the bench, not to the suite).
"""

import os
import subprocess
import sys

import pytest

from bench.filters import statement_without_filters
from deliveries.relay import RELAY_SQL
from tests.support.processes import ROOT


def test_the_baseline_is_the_relay_statement_without_its_filter_parts() -> None:
    baseline = statement_without_filters(RELAY_SQL)

    for part in ("filtering AS", "filtered AS", "filter_bodies", "fb.body @> s.filter"):
        assert part in RELAY_SQL
        assert part not in baseline
    assert len(RELAY_SQL) - len(baseline) > 500
    assert baseline.count("fanned AS (") == 1


@pytest.mark.e2e
def test_a_tiny_run_relays_every_event_of_every_variant() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ESL_", "DATABASE_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.filters", "--events", "40", "--subs", "4", "--repeats", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:6]}
    assert [rows[name][-2] for name in ("baseline", "none")] == ["160", "160"]  # 40 events x 4 subscriptions
    assert rows["all"][-2] == "160"  # every filter matches
    assert rows["half"][-2] == "80"  # half the filters match
