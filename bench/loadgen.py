"""API load: closed-loop bursts and open-loop fixed-rate phases, from client threads with a connection each.

Each thread speaks HTTP/1.1 through ``http.client``, keeping its connection while the server keeps it (gunicorn's
sync workers close it after every response, so there a request opens a new one, as any client's would). The
load's own CPU counts in (a)'s "CPU per delivery, all" (it runs in the bench's process), and takes its cores
from the system measured: ``requests`` spends about three times what ``http.client`` does on a request (0.46
against 0.16 ms, to a server that closes after each response; docs/benchmarks.md).
"""

from __future__ import annotations

import http.client
import itertools
import json
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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


class JsonPoster:
    """Sends requests (POSTs of JSON bodies) to one URL over one connection, opened again when the server closed it.

    A kept connection the server has closed meanwhile (its keep-alive timeout) reads as ready with nothing to
    read: it is replaced before the request is written, as urllib3 does, never retried after (a POST sent
    twice would create twice).
    """

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain HTTP URL: {url}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.connection: http.client.HTTPConnection | None = None

    def _ready_connection(self) -> http.client.HTTPConnection:
        connection = self.connection
        if connection is not None and connection.sock is not None:
            readable, _, _ = select.select([connection.sock], [], [], 0)
            if readable:  # closed by the server (or something unasked for): not to be written to
                connection.close()
                connection = None
        if connection is None:
            connection = self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return connection

    def post(self, body: dict[str, object]) -> tuple[int, bytes]:
        """The response's status and body."""
        return self.send("POST", json.dumps(body).encode())

    def send(self, method: str, content: bytes | None = None) -> tuple[int, bytes]:
        """The response's status and body to a request of ``method`` with ``content`` (JSON) as its body."""
        connection = self._ready_connection()
        try:
            connection.request(method, self.path, content, self.headers)
            response = connection.getresponse()
            answer = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, answer

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


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
        poster = JsonPoster(url, token)
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
                status, content = poster.post(make_body(index))
                if status in (200, 201):
                    local_ok += 1
                else:
                    local_errors.append(f"HTTP {status}: {content[:200].decode(errors='replace')}")
            except (OSError, http.client.HTTPException) as exc:
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
        poster.close()

    pool = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(max_seconds + 120)
    return result
