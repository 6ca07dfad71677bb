"""Physical limits in the same run: ``bench/limits.py`` in a process of its own, on the same receiver and server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.config import Config
from bench.procs import ROOT
from bench.receiving import ReceiverClient
from bench.results import HttpLimit, Limits, PgLimit
from bench.stack import Services

PYTHON = sys.executable
LIMITS_PY = str(ROOT / "bench" / "limits.py")


def run_json(command: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs ``command`` and returns the JSON object on the last line of its stdout."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_limits(cfg: Config, services: Services, receiver_port: int, receiver: ReceiverClient) -> Limits:
    seconds = str(cfg.limit_seconds)
    receiver.reset()
    http = run_json([PYTHON, LIMITS_PY, "http", "--port", str(receiver_port), "--seconds", seconds], 120)
    receiver.reset()
    services.create_database("bench_limits")
    url = services.pg_url("bench_limits")
    pg1 = run_json([PYTHON, LIMITS_PY, "pg", "--url", url, "--seconds", seconds, "--conns", "1"], 120)
    pg8 = run_json([PYTHON, LIMITS_PY, "pg", "--url", url, "--seconds", seconds, "--conns", "8"], 120)
    return Limits(
        http_keepalive_1conn=HttpLimit(**http), pg_insert_1conn=PgLimit(**pg1), pg_insert_8conn=PgLimit(**pg8)
    )
