"""The bench's side of the receiver process (``bench/receiver.py``): its control API, and waiting for receipts."""

from __future__ import annotations

import time
from typing import NamedTuple

import requests

from bench.procs import HOST


class Receipt(NamedTuple):
    """One request the receiver took, as ``/_dump`` lists it."""

    arrival: float  # wall clock
    delivery_key: str
    event_key: str
    event_ts: float | None  # the envelope's own timestamp (the peer's created_at)
    path: str
    attempt: str


def drain_timeout(expected: int) -> float:
    return min(120 + expected / 20, 900)


class ReceiverClient:
    def __init__(self, port: int) -> None:
        self.url = f"http://{HOST}:{port}"
        self.session = requests.Session()
        self.session.trust_env = False

    def count(self) -> int:
        return int(self.session.get(f"{self.url}/_stats", timeout=30).json()["count"])

    def reset(self) -> None:
        self.session.get(f"{self.url}/_reset", timeout=30)

    def dump(self) -> list[Receipt]:
        """Every receipt so far, and empties the receiver's store."""
        rows = self.session.get(f"{self.url}/_dump?clear=1", timeout=120).json()
        return [Receipt(*row) for row in rows]

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

    def collect(self, expected: int, path_prefix: str, stall: float = 30.0) -> tuple[list[Receipt], int]:
        """Dumps the receiver until ``expected`` distinct deliveries to paths under ``path_prefix`` arrived, or
        none arrived for ``stall`` seconds. Returns those, and how many requests went to other paths."""
        kept: list[Receipt] = []
        others = 0
        seen: set[str] = set()
        deadline = time.monotonic() + drain_timeout(expected)
        last_change = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_change < stall:
            dumped = self.dump()
            fresh = [receipt for receipt in dumped if str(receipt.path).startswith(path_prefix)]
            others += len(dumped) - len(fresh)
            if fresh:
                last_change = time.monotonic()
                kept += fresh
                seen.update(receipt.delivery_key for receipt in fresh)
            if len(seen) >= expected:
                break
            time.sleep(0.2)
        return kept, others
