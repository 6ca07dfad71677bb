"""API load: closed-loop bursts and open-loop fixed-rate phases, from client threads with keep-alive sessions."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

NOTES = "x" * 600  # makes the delivered envelope ~1 KB, as in the research anchors

BodyFactory = Callable[[int], dict[str, object]]


def person_body(prefix: str) -> BodyFactory:
    def make(index: int) -> dict[str, object]:
        return {"name": f"Bench {prefix} {index}", "email": f"{prefix}-{index}@example.com", "notes": NOTES}

    return make


def peer_body(prefix: str) -> BodyFactory:
    def make(index: int) -> dict[str, object]:
        return {"name": f"Bench {prefix} {index}", "email": f"{prefix}-{index}@example.com", "notes": NOTES,
                "ref": f"{prefix}-{index}"}  # fmt: skip

    return make


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    first_start: float = 0.0  # wall clock
    last_end: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds per request
    max_lag: float = 0.0  # open loop: how late the latest send started

    @property
    def seconds(self) -> float:
        return max(self.last_end - self.first_start, 1e-9)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


def _session(token: str | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def run_load(
    url: str, token: str | None, make_body: BodyFactory, *, count: int, threads: int = 8,
    rate: float | None = None, max_seconds: float = 600.0,
) -> LoadResult:  # fmt: skip
    """Sends ``count`` POSTs; closed loop when ``rate`` is None, else request i is due at start + i/rate.

    Bounded by ``count`` and by ``max_seconds`` of wall time.
    """
    result = LoadResult()
    lock = threading.Lock()
    counter = itertools.count()
    start_mono = time.monotonic() + 0.05
    deadline = start_mono + max_seconds
    result.first_start = time.time() + 0.05

    def worker() -> None:
        session = _session(token)
        local_lat: list[float] = []
        local_ok = 0
        local_errors: list[str] = []
        lag = 0.0
        while True:
            index = next(counter)
            if index >= count:
                break
            if rate:
                due = start_mono + index / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    lag = max(lag, -pause)
            else:
                pause = start_mono - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            if time.monotonic() > deadline:
                break
            began = time.perf_counter()
            try:
                response = session.post(url, json=make_body(index), timeout=60)
                if response.status_code in (200, 201):
                    local_ok += 1
                else:
                    local_errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except requests.RequestException as exc:
                local_errors.append(f"{type(exc).__name__}: {exc}"[:200])
            local_lat.append(time.perf_counter() - began)
        end = time.time()
        with lock:
            result.ok += local_ok
            result.sent += len(local_lat)
            result.errors += local_errors
            result.latencies += local_lat
            result.last_end = max(result.last_end, end)
            result.max_lag = max(result.max_lag, lag)
        session.close()

    pool = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(max_seconds + 120)
    return result
