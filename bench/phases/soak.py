"""(e) soak, with --soak: a moderate rate for 10 minutes, and how the RSS of every process grew over it."""

from __future__ import annotations

import threading
import time

from bench.config import Config
from bench.loadgen import LoadResult, person_body, run_load
from bench.procs import MemorySampler
from bench.progress import log
from bench.receiving import Receipt, ReceiverClient, drain_timeout
from bench.results import Latency, LoadSummary, RssGrowth, Soak
from bench.stack import SapienStack


def soak_phase(
    cfg: Config, stack: SapienStack, receiver: ReceiverClient, api: str, token: str, sampler: MemorySampler,
    broker: str, rate: float,
) -> Soak:  # fmt: skip
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

    def absorb(batch: list[Receipt]) -> None:
        nonlocal received
        received += len(batch)
        for receipt in batch:
            seen.add(receipt.delivery_key)
            if receipt.event_ts is not None:
                latencies.append(receipt.arrival - receipt.event_ts)

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
    growth = rss_growth(sampler, started + 60)
    missing = max(expected - len(seen), 0)
    log(f"    soak: {len(seen)}/{expected} delivered, missing {missing}")
    return Soak(rate=rate, seconds=cfg.soak_seconds, expected=expected, unique=len(seen),
                duplicates=received - len(seen), missing=missing, latency_ms=Latency.of(latencies),
                load=LoadSummary.of(result) if result else None, rss_growth=growth)  # fmt: skip


def rss_growth(sampler: MemorySampler, after: float) -> dict[str, RssGrowth]:
    """RSS per process (``<group>/<pid>``) at the first sample from ``after`` on vs at the last sample."""
    series = sampler.series
    warm = next((point for moment, point in series if moment >= after), None)
    if warm is None or not series:
        return {}
    end = series[-1][1]
    out = {}
    for key, start_kb in warm.items():
        if key in end and start_kb:
            label, _, pid = key.rpartition("/")
            out[key] = RssGrowth(after_1min_mb=round(start_kb / 1024, 1), end_mb=round(end[key] / 1024, 1),
                                 growth_pct=round(100 * (end[key] - start_kb) / start_kb, 1),
                                 process=sampler.labels.get((label, int(pid)), ""))  # fmt: skip
    return out
