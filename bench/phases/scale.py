"""--scale: the history grown to each size, and what reading it, claiming, relaying and dropping a day cost there.

For each size of ``cfg.scale_sizes`` (ascending, each step adding to the last): set-based SQL grows the history to
that many retained deliveries, one event and one attempt each, at random times over the ``cfg.scale_days`` days
before the phase started (``bench/history_load.py``), then ``VACUUM (ANALYZE)`` and a ``CHECKPOINT``. Each figure of
``FIGURES`` is then run twice untimed and ``cfg.scale_repeats`` times timed on the idle pipeline, and its median
kept: HTTP requests to the live gunicorn with a real OAuth token (the admin with a signed-in superuser's session),
in rounds of one request of each; the claim and relay statements in Django-side transactions that are rolled
back; one API write timed to its receipt. Last, a day outside the history (``days + 2`` days back) is filled as
full as one of the history's days and dropped with ``history_day_drop`` while another session reads the delivery
log: one timing per size, since a day drops once.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from bench.config import Config
from bench.history_load import HistoryLoader
from bench.loadgen import person_body
from bench.procs import CpuMeter
from bench.progress import log
from bench.receiving import ReceiverClient
from bench.results import ScaleFigure, ScaleLoad, ScaleRun, ScaleSize
from bench.stack import SapienStack

FIGURES: dict[str, str] = {  # key -> what the report calls it, in the report's order
    "log": "delivery log, first page",
    "log_status": "delivery log ?status=failed",
    "log_event_type": "delivery log ?event_type=pet.created",
    "log_since_until": "delivery log ?since=&until= (1 h mid-history)",
    "log_deep": "delivery log, page after 20 pages of 200",
    "events": "events, first page",
    "metrics": "GET /metrics",
    "health": "GET /health",
    "admin_deliveries": "admin changelist: deliveries",
    "admin_attempts": "admin changelist: attempts",
    "admin_events": "admin changelist: events",
    "claim_empty": "claim statement, nothing due",
    "claim_due": "claim statement, 100 due",
    "relay": "relay statement, 100 fresh events",
    "end_to_end": "end to end: API write -> receipt",
    "drop_day": "drop one day of history",
    "drop_day_stall": "  longest log read during the drop",
}
GOAL_RATIO, GOAL_MS, GOAL_DROP_MS = 1.5, 50.0, 1000.0
DEEP_PAGES, DEEP_PAGE_SIZE = 20, 200
WARM_UP_RUNS = 2  # untimed, before a figure's timed runs: about one per gunicorn worker
METRICS_TOKEN = secrets.token_urlsafe(24)  # ESL_METRICS_TOKEN of the scale stack: /metrics may require it
DISK_MARGIN_BYTES = 5 * 1024**3
WAL_ALLOWANCE_BYTES = 12 * 1024**3  # what the WAL may grow to while loading (max_wal_size 8GB, and more)


def retention_hours(cfg: Config) -> int:
    """Long enough that beat's retention pass drops neither the history nor the day kept for the drop."""
    return (cfg.scale_days + 4) * 24


def scale_phase(cfg: Config, stack: SapienStack, db_url: str, receiver: ReceiverClient, receiver_url: str) -> ScaleRun:
    tenant = stack.side("scale-tenant", "--name", "bench-scale", "--callback", f"{receiver_url}/scale")
    organization, subscription = str(tenant["organization_id"]), str(tenant["subscription_id"])
    token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=cfg.scale_days)
    drop_day_start = datetime.combine((end - timedelta(days=cfg.scale_days + 2)).date(), datetime.min.time(), UTC)
    stack.side("partitions", "--now", start.isoformat())  # the history's days (the relay made today's onwards)
    loader = HistoryLoader(db_url, organization, subscription)
    probe = Probe(cfg, stack, receiver, token, tenant, subscription, mid=start + (end - start) / 2)
    sizes: list[ScaleSize] = []
    skipped: list[str] = []
    loaded, rate, bytes_per_row = 0, None, None
    for size in cfg.scale_sizes:
        added, day_rows = size - loaded, size // cfg.scale_days
        why = too_big(cfg, stack, added + day_rows, rate, bytes_per_row)
        if why:
            skipped.append(f"{size:,}: {why}")
            log(f"[scale] skipping {size:,} and larger: {why}")
            break
        log(f"[scale] growing the history to {size:,} deliveries (+{added:,}) over {cfg.scale_days} days")
        with loader.loading():
            seconds = loader.load(start, end, added, f"{size:,}")
            vacuum = loader.vacuum_analyze()
        loaded, rate = size, added / seconds if seconds else None
        history = loader.history_mb()
        bytes_per_row = sum(history.values()) * 1024**2 / size
        log(f"    {added:,} deliveries in {seconds:.1f} s ({rate or 0:,.0f}/s with their events and attempts); "
            f"VACUUM (ANALYZE) {vacuum:.1f} s; CHECKPOINT {loader.checkpoint_seconds:.1f} s; "
            f"history {sum(history.values()):,.0f} MB")  # fmt: skip
        load = ScaleLoad(added=added, seconds=round(seconds, 2), deliveries_per_s=round(rate, 1) if rate else None,
                         vacuum_analyze_seconds=round(vacuum, 2),
                         checkpoint_seconds=round(loader.checkpoint_seconds, 2), history_mb=history)  # fmt: skip
        load_average = os.getloadavg()
        meter = CpuMeter(stack.sampler)
        figures, plans = probe.measure(organization)
        cpu = meter.stop()
        figures |= drop_one_day(stack, loader, subscription, drop_day_start, day_rows, f"{size:,} (day to drop)")
        sizes.append(ScaleSize(deliveries=size, load=load, figures=figures, cpu=cpu, plans=plans,
                               load_average=(load_average[0], load_average[1], load_average[2])))  # fmt: skip
        for key, figure in figures.items():
            shown = f"{figure.median_ms:.1f} ms" if figure.median_ms is not None else f"FAILED {figure.error}"
            log(f"    {FIGURES[key]}: {shown}")
    return ScaleRun(days=cfg.scale_days, repeats=cfg.scale_repeats, sizes=sizes, skipped=skipped,
                    goal_ratio=GOAL_RATIO, goal_ms=GOAL_MS, goal_drop_ms=GOAL_DROP_MS)  # fmt: skip


def too_big(cfg: Config, stack: SapienStack, rows: int, rate: float | None, bytes_per_row: float | None) -> str | None:
    """Why the next size should not be loaded: a projected load past --scale-max-load-minutes, or a disk
    that would not hold it (both projected from the last size; the rate only falls as indexes outgrow memory)."""
    if cfg.scale_max_load_minutes is not None and rate:
        minutes = rows / rate / 60
        if minutes > cfg.scale_max_load_minutes:
            return (f"loading {rows:,} more deliveries would take ~{minutes:.0f} min at the last rate "
                    f"({rate:,.0f}/s), past --scale-max-load-minutes {cfg.scale_max_load_minutes:g}")  # fmt: skip
    if bytes_per_row:
        needed = bytes_per_row * rows + WAL_ALLOWANCE_BYTES
        free = shutil.disk_usage(stack.services.data_dir).free
        if needed > free - DISK_MARGIN_BYTES:
            return f"~{needed / 1024**3:.0f} GB needed, {free / 1024**3:.0f} GB free"
    return None


def drop_one_day(
    stack: SapienStack, loader: HistoryLoader, subscription: str, day: datetime, rows: int, label: str
) -> dict[str, ScaleFigure]:
    """A day as full as one of the history's, outside it, settled as an old day is (vacuumed, its files written
    out) and dropped with ``history_day_drop``, timed once; and the longest read of the delivery log that another
    session made meanwhile (the drop's locks, held until its commit, stop readers of the history tables)."""
    try:
        stack.side("partitions", "--now", (day + timedelta(days=1)).isoformat())  # recreates the day dropped last
        with loader.loading():
            loader.load(day, day + timedelta(days=1), rows, label)
            loader.vacuum_analyze(day.date())  # else autovacuum, busy with the fresh day, holds the drop up
        dropped: dict[str, Any] = stack.side("drop-day", "--day", day.date().isoformat(), "--subscription",
                                             subscription)  # fmt: skip
    except Exception as exc:
        return dict.fromkeys(("drop_day", "drop_day_stall"), failure(exc))
    statements_ms = 1000 * float(dropped["statements_seconds"])
    return {
        "drop_day": ScaleFigure.of([float(dropped["seconds"])], detail=(
            f"{rows:,} deliveries, events and attempts: {statements_ms:,.1f} ms of statements, the rest its commit "
            f"(the files removed); taken at try {dropped.get('tries', 1)} (a busy table refuses it, NOWAIT)")),
        "drop_day_stall": ScaleFigure.of([float(dropped["reader_max_seconds"])], detail=(
            f"{dropped['reads_during']} reads during the drop; the longest before it "
            f"{1000 * float(dropped['reader_max_before_seconds']):.1f} ms")),
    }  # fmt: skip


class Probe:
    """The figures other than the drop, against one stack: sessions signed in once, reused at every size."""

    def __init__(
        self, cfg: Config, stack: SapienStack, receiver: ReceiverClient, token: str, tenant: dict[str, object],
        subscription: str, mid: datetime,
    ) -> None:  # fmt: skip
        self.cfg, self.stack, self.receiver, self.subscription = cfg, stack, receiver, subscription
        self.base = stack.base_url
        self.api = session({"Authorization": f"Bearer {token}"})
        self.metrics = session({"Authorization": f"Bearer {METRICS_TOKEN}"})
        self.plain = session({})
        self.admin: requests.Session | None = None
        self.admin_error = ""
        try:
            self.admin = admin_session(self.base, str(tenant["admin_email"]), str(tenant["admin_password"]))
        except Exception as exc:  # the admin's figures fail, the others are still measured
            self.admin_error = f"{type(exc).__name__}: {exc}"
        self.since, self.until = iso(mid), iso(mid + timedelta(hours=1))
        self.plans: dict[str, str] = {}
        self.writes = 0

    def measure(self, organization: str) -> tuple[dict[str, ScaleFigure], dict[str, str]]:
        log_url = f"{self.base}/api/v1/subscriptions/{self.subscription}/deliveries"
        gets: dict[str, tuple[requests.Session | None, str]] = {
            "log": (self.api, log_url),
            "log_status": (self.api, f"{log_url}?status=failed"),
            "log_event_type": (self.api, f"{log_url}?event_type=pet.created"),
            "log_since_until": (self.api, f"{log_url}?since={self.since}&until={self.until}"),
            "events": (self.api, f"{self.base}/api/v1/events"),
            "metrics": (self.metrics, f"{self.base}/metrics"),
            "health": (self.plain, f"{self.base}/health"),
            "admin_deliveries": (self.admin, f"{self.base}/admin/deliveries/delivery/"),
            "admin_attempts": (self.admin, f"{self.base}/admin/deliveries/deliveryattempt/"),
            "admin_events": (self.admin, f"{self.base}/admin/events/event/"),
        }
        calls = {key: getter(http, url) for key, (http, url) in gets.items() if http}
        figures = {key: ScaleFigure.failed(self.admin_error) for key, (http, _) in gets.items() if not http}
        details: dict[str, str] = {}
        deep = self.deep_page_url(log_url)
        if isinstance(deep, ScaleFigure):
            figures["log_deep"] = deep
        else:
            calls["log_deep"], details["log_deep"] = getter(self.api, deep[0]), f"{deep[1]:,} rows down"
        figures |= self.timed_in_rounds(calls, details)
        figures |= self.statements(organization)
        figures["end_to_end"] = self.end_to_end()
        return {key: figures[key] for key in FIGURES if key in figures}, self.plans

    def timed_in_rounds(self, calls: dict[str, Callable[[], None]], details: dict[str, str]) -> dict[str, ScaleFigure]:
        """``WARM_UP_RUNS`` untimed rounds (workers, connections, caches), then ``scale_repeats`` timed ones, each
        round one run of every call in turn: a burst of load from elsewhere on the machine lands on all the figures
        alike, not on one. A call that raises fails its figure."""
        samples: dict[str, list[float]] = {key: [] for key in calls}
        failed: dict[str, ScaleFigure] = {}
        for round_ in range(WARM_UP_RUNS + self.cfg.scale_repeats):
            for key, call in calls.items():
                if key in failed:
                    continue
                started = time.perf_counter()
                try:
                    call()
                except Exception as exc:
                    failed[key] = failure(exc)
                    continue
                if round_ >= WARM_UP_RUNS:
                    samples[key].append(time.perf_counter() - started)
        return {key: failed.get(key) or ScaleFigure.of(samples[key], details.get(key, "")) for key in calls}

    def deep_page_url(self, log_url: str) -> tuple[str, int] | ScaleFigure:
        """The page just past ``DEEP_PAGES`` pages of ``DEEP_PAGE_SIZE`` (or the last page, in a shorter log), at
        the default page size (its cursor names a position, not a page size), and how many rows down it starts.
        Follows ``next`` links, so cursor pages and the old numbered ones alike."""
        try:
            url, depth = f"{log_url}?page_size={DEEP_PAGE_SIZE}", 0
            for _ in range(DEEP_PAGES):
                body = get_ok(self.api, url).json()
                following = body.get("next") if isinstance(body, dict) else None
                if not following:
                    break
                depth, url = depth + len(body.get("results", [])), following
            if not depth:
                raise RuntimeError("the log has a single page")
        except Exception as exc:
            return failure(exc)
        return without_param(url, "page_size"), depth

    def statements(self, organization: str) -> dict[str, ScaleFigure]:
        """The claim and relay statements, timed Django-side (bench/sapien_side.py statement-probes)."""
        keys = ("claim_empty", "claim_due", "relay")
        try:
            out: dict[str, Any] = self.stack.side("statement-probes", "--organization", organization,
                                                  "--subscription", self.subscription,
                                                  "--repeats", str(self.cfg.scale_repeats))  # fmt: skip
        except Exception as exc:
            self.plans = {}
            return dict.fromkeys(keys, failure(exc))
        self.plans = {str(key): str(value) for key, value in out["plans"].items()}
        return {
            key: ScaleFigure.of([float(value) for value in out[key]["seconds"]],
                                detail=f"{out[key]['rows']} deliveries {'fanned out' if key == 'relay' else 'claimed'}")
            for key in keys
        }  # fmt: skip

    def end_to_end(self) -> ScaleFigure:
        """A person created through the API, timed from before the request to its webhook's arrival."""
        body = person_body("scale")

        def one() -> float:
            self.receiver.reset()
            self.writes += 1
            started = time.time()
            response = self.api.post(f"{self.base}/api/persons", json=body(self.writes), timeout=30)
            if response.status_code != 201:
                raise RuntimeError(f"POST /api/persons: {response.status_code} {response.text[:200]}")
            deadline = time.monotonic() + 30
            while self.receiver.count() < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("no webhook within 30 s")
                time.sleep(0.002)
            return min(receipt.arrival for receipt in self.receiver.dump()) - started

        try:
            for _ in range(WARM_UP_RUNS):
                one()
            samples = [one() for _ in range(self.cfg.scale_repeats)]
            return ScaleFigure.of(samples, detail="from before the POST to the receiver's arrival")
        except Exception as exc:
            return failure(exc)


def failure(exc: Exception) -> ScaleFigure:
    """The figure failed: the exception's type and its last line (a side script's is its own exception)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return ScaleFigure.failed(f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300])


def session(headers: dict[str, str]) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.headers.update(headers)
    return http


def getter(http: requests.Session, url: str) -> Callable[[], None]:
    def get() -> None:
        get_ok(http, url)

    return get


def get_ok(http: requests.Session, url: str) -> requests.Response:
    response = http.get(url, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    if "/admin/login/" in response.url:
        raise RuntimeError(f"GET {url}: sent to the admin's sign-in page")
    return response


def admin_session(base: str, email: str, password: str) -> requests.Session:
    """A superuser signed in through the admin's own form (CSRF cookie and token, as a browser would)."""
    http = session({})
    login = f"{base}/admin/login/?next=/admin/"
    page = http.get(login, timeout=30)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if page.status_code != 200 or match is None:
        raise RuntimeError(f"admin sign-in page: {page.status_code}")
    form = {"csrfmiddlewaretoken": match.group(1), "username": email, "password": password, "next": "/admin/"}
    signed_in = http.post(login, data=form, headers={"Referer": login}, timeout=30)
    if signed_in.status_code != 200 or "/admin/login/" in signed_in.url:
        raise RuntimeError(f"admin sign-in refused: {signed_in.status_code} {signed_in.url}")
    return http


def without_param(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != name]
    return urlunsplit(parts._replace(query=urlencode(query)))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
