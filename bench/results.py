"""What every phase measured, as frozen dataclasses; ``Results.as_json()`` is what goes to bench/results/.

Field names are the JSON keys. Phases that count deliveries at the receiver extend ``Deliveries``,
so their JSON objects stay flat (``a_sustained.unique``, ``f_isolation.mixed.missing``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.config import Config
from bench.loadgen import LoadResult
from bench.procs import CpuUse
from bench.receiving import Receipt
from bench.stats import median, ms, pct

Profile = dict[str, dict[str, list[tuple[str, float]]]]  # process -> summary, as ``Profiler.stop()`` returns it


@dataclass(frozen=True)
class Latency:
    """Percentiles in milliseconds."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        return cls(p50=ms(pct(seconds, 0.50)), p95=ms(pct(seconds, 0.95)), p99=ms(pct(seconds, 0.99)),
                   max=ms(max(seconds) if seconds else None), n=len(seconds))  # fmt: skip


@dataclass(frozen=True)
class LoadSummary:
    """What the load generator saw of the API."""

    sent: int
    ok: int
    errors: int
    first_errors: list[str]
    seconds: float
    req_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_lag_s: float

    @classmethod
    def of(cls, result: LoadResult) -> LoadSummary:
        return cls(sent=result.sent, ok=result.ok, errors=len(result.errors), first_errors=result.errors[:3],
                   seconds=round(result.seconds, 3), req_per_s=round(result.rate, 1),
                   p50_ms=ms(pct(result.latencies, 0.5)), p99_ms=ms(pct(result.latencies, 0.99)),
                   max_lag_s=round(result.max_lag, 3))  # fmt: skip


@dataclass(frozen=True)
class Deliveries:
    """Deliveries counted at the receiver: unique by delivery key, the rate from ``first_write`` to the last
    receipt, and the latency envelope timestamp -> receipt."""

    expected: int
    received: int
    unique: int
    duplicates: int
    missing: int
    first_write: float
    last_receipt: float
    seconds: float
    deliveries_per_s: float | None
    latency_ms: Latency

    @classmethod
    def count(cls, receipts: list[Receipt], *, expected: int, start: float) -> Deliveries:
        unique = len({receipt.delivery_key for receipt in receipts})
        latencies = [receipt.arrival - receipt.event_ts for receipt in receipts if receipt.event_ts is not None]
        last = max((receipt.arrival for receipt in receipts), default=start)
        return cls(expected=expected, received=len(receipts), unique=unique, duplicates=len(receipts) - unique,
                   missing=max(expected - unique, 0), first_write=start, last_receipt=last, seconds=last - start,
                   deliveries_per_s=unique / (last - start) if last > start else None,
                   latency_ms=Latency.of(latencies))  # fmt: skip

    def fields(self) -> dict[str, Any]:
        """This count's fields, to build a phase result that extends it: ``Phase(**counted.fields(), ...)``."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(Deliveries)}


@dataclass(frozen=True)
class Stage:
    """One stage of the latency, from the rows' own timestamps (ms)."""

    p50: float | None
    p99: float | None
    n: int


@dataclass(frozen=True)
class TableWrites:
    """What one table had written during a phase (its partitions and TOAST table folded in): bench/writes.py."""

    inserts: int
    updates: int
    hot_updates: int
    deletes: int
    rows: int  # inserts + updates + deletes
    index_entries: int  # estimate: (inserts + non-HOT updates) x the indexes of each partition
    indexes: int  # of a partition (for "others": summed over its tables)
    partial_indexes: int  # of them partial
    index_entries_upper_bound: bool  # a partial index was written to: it may have taken fewer entries


@dataclass(frozen=True)
class Writes:
    """Rows, index entries and WAL the database server wrote during a phase, in all and per delivery
    (bench/writes.py: how, and why the counters are read once they settle)."""

    deliveries: int
    rows: int
    index_entries: int
    index_entries_upper_bound: bool
    updates: int
    hot_updates: int
    hot_share: float | None  # HOT updates / updates
    wal_bytes: int  # the WAL position's move: the whole server
    wal_records: int  # pg_stat_wal
    wal_fpi: int  # full-page images among them
    rows_per_delivery: float | None
    index_entries_per_delivery: float | None
    wal_bytes_per_delivery: float | None
    tables: dict[str, TableWrites]  # events_event, deliveries_delivery, deliveries_deliveryattempt, "others"
    other_tables: dict[str, TableWrites]  # each table summed into "others"
    settle_seconds: float  # waited for the counters to settle, before and after the phase
    settled: bool  # False: they still moved after SETTLE_TIMEOUT_SECONDS, the figures may miss some writes
    subtracted: str  # the bench's own statement taken out of the figures ("" when none)


# The label of (b)'s run at half of (a)'s event rate, where the latency goal is set (bench/targets.py).
HALF_RATE_LABEL = "50% of (a)"


@dataclass(frozen=True)
class DeliveryPhase(Deliveries):
    """(a) or (b): ``events`` written through the API (closed loop, or open loop at ``target_rate``)."""

    cpu: CpuUse
    load: LoadSummary
    events: int
    events_per_s: float | None
    target_rate: float | None
    achieved_rate: float | None
    profile: Profile | None = None  # --profile, (a) only
    stages_ms: dict[str, Stage] | None = None  # Sapien only
    label: str | None = None  # (b): which rate (HALF_RATE_LABEL: half of (a)'s event rate)
    writes: Writes | None = None  # (a) only


@dataclass(frozen=True)
class IsolationRun(Deliveries):
    """The healthy subscriptions' first attempts in one run of (f)."""

    other_requests: int  # to the failing and slow subscriptions


@dataclass(frozen=True)
class Isolation:
    """(f): ``healthy`` subscriptions alone (``clean``), then beside ``failing`` and ``slow`` ones (``mixed``)."""

    rate: float
    healthy: int
    failing: int
    slow: int
    clean: IsolationRun
    mixed: IsolationRun
    p99_ratio_mixed_to_clean: float | None


@dataclass(frozen=True)
class ApiRun(LoadSummary):
    """One closed-loop run of (d)."""

    cpu: CpuUse


@dataclass(frozen=True)
class ApiOnOff:
    """(d): creates/s and CPU per create with the outbox on and off, means over the alternating runs; and on, for
    an organization with a subscription that none of its creates match (each commit wakes the relay)."""

    runs: dict[str, ApiRun]  # "true #1", "false #1", "true, subscribed #1", ...
    on_req_per_s: float
    off_req_per_s: float
    ratio_on_off: float | None
    cpu_ms_on: float
    cpu_ms_off: float
    cpu_ratio_off_on: float | None
    subscribed_req_per_s: float | None = None
    ratio_subscribed_off: float | None = None
    cpu_ms_subscribed: float | None = None


@dataclass(frozen=True)
class Drain(Deliveries):
    """(a2): held-back deliveries released at once, timed at the receiver."""

    cpu: CpuUse
    first_receipt_after_s: float | None
    first_to_last_per_s: float | None
    writes: Writes | None = None


@dataclass(frozen=True)
class Relay:
    """(c): ``relay_pending`` over ``events`` outbox rows vs the raw-SQL loop (both as their scripts printed)."""

    events: int
    leftover_before: int
    probe: dict[str, Any]  # bench/sapien_side.py relay-probe
    baseline: dict[str, Any]  # bench/limits.py relay-sql
    events_per_s: float
    deliveries_per_s: float
    baseline_events_per_s: float
    baseline_deliveries_per_s: float
    ratio_to_baseline: float | None
    drain: Drain


@dataclass(frozen=True)
class HeldTransaction(Deliveries):
    """(g): (a)'s workload while one transaction stays open, overall and per sixth of the hold."""

    cpu: CpuUse
    hold_seconds: float
    per_window_deliveries_per_s: list[float]
    dead_delivery_rows_at_end: int | None
    load: LoadSummary
    ratio_to_a: float | None
    last_window_ratio_to_a: float | None


@dataclass(frozen=True)
class RssGrowth:
    after_1min_mb: float
    end_mb: float
    growth_pct: float
    process: str


@dataclass(frozen=True)
class Soak:
    """(e) with --soak: a moderate rate for ``seconds``, and the RSS of every process after 1 min vs at the end."""

    rate: float
    seconds: float
    expected: int
    unique: int
    duplicates: int
    missing: int
    latency_ms: Latency
    load: LoadSummary | None
    rss_growth: dict[str, RssGrowth]  # "<group>/<pid>" -> growth


@dataclass(frozen=True)
class DeliveryPhases:
    """What ``phases.delivery.delivery_phases`` measures for either system: warm-up, (a), (b)."""

    warmup_missing: int
    a_sustained: DeliveryPhase
    b_latency: list[DeliveryPhase]


@dataclass(frozen=True)
class SapienRun:
    broker: str  # its URL, credentials redacted
    warmup_missing: int
    a_sustained: DeliveryPhase
    b_latency: list[DeliveryPhase]
    f_isolation: Isolation
    d_api: ApiOnOff
    c_relay: Relay
    g_held_transaction: HeldTransaction
    soak: Soak | None
    exited_processes: list[str]

    def missing(self) -> int:
        """Deliveries lost in any phase (the exit status)."""
        counted: list[Deliveries] = [self.a_sustained, *self.b_latency, self.c_relay.drain, self.f_isolation.clean,
                                     self.f_isolation.mixed, self.g_held_transaction]  # fmt: skip
        soak = self.soak.missing if self.soak else 0
        return sum(phase.missing for phase in counted) + soak + self.warmup_missing


@dataclass(frozen=True)
class PeerRun:
    package: str
    warmup_missing: int
    a_sustained: DeliveryPhase
    b_latency: list[DeliveryPhase]
    exited_processes: list[str]


@dataclass(frozen=True)
class Failed:
    """A system's run that raised: the exception, in one line."""

    error: str


@dataclass(frozen=True)
class BrokerRun:
    sapien: SapienRun | Failed
    peer: PeerRun | Failed | None = None  # None: the peer was not run


@dataclass(frozen=True)
class HttpLimit:
    """bench/limits.py http: one keep-alive connection posting to the receiver."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class PgLimit:
    """bench/limits.py pg: single-row autocommit INSERTs from ``conns`` connections."""

    conns: int
    rows: int
    seconds: float
    rows_per_s: float
    p50_ms: float
    mean_ms: float | None


@dataclass(frozen=True)
class Limits:
    http_keepalive_1conn: HttpLimit
    pg_insert_1conn: PgLimit
    pg_insert_8conn: PgLimit


@dataclass(frozen=True)
class RssRow:
    group: str
    pid: int
    process: str  # "leader", or a child's command line
    peak_mb: float  # VmHWM
    rss_mb: float | None = None  # VmRSS when last seen: just before the process was stopped, or at the run's end
    pss_mb: float | None = None  # PSS (smaps_rollup) at that moment


@dataclass(frozen=True)
class ScaleFigure:
    """One figure at one size of --scale: the median of ``samples_ms``, or the error that stopped it."""

    median_ms: float | None
    samples_ms: list[float]
    detail: str = ""  # what exactly was timed, e.g. the page's depth or the rows the dropped day held
    error: str | None = None

    @classmethod
    def of(cls, seconds: list[float], detail: str = "") -> ScaleFigure:
        return cls(median_ms=ms(median(seconds)), samples_ms=[round(value * 1000, 2) for value in seconds],
                   detail=detail)  # fmt: skip

    @classmethod
    def failed(cls, error: str) -> ScaleFigure:
        return cls(median_ms=None, samples_ms=[], error=error)


@dataclass(frozen=True)
class ScaleLoad:
    """Growing the history to a size: ``added`` deliveries, each with its event and one attempt, by set-based SQL."""

    added: int
    seconds: float
    deliveries_per_s: float | None
    vacuum_analyze_seconds: float
    checkpoint_seconds: float  # the CHECKPOINT after the load, so that no write-back overlaps the measurements
    history_mb: dict[str, float]  # each history table with its indexes, after the load


@dataclass(frozen=True)
class ScaleSize:
    """Every figure at one size, measured on an idle pipeline (``load_average`` and ``cpu`` say how idle)."""

    deliveries: int  # retained: one per event, one attempt each
    load: ScaleLoad
    figures: dict[str, ScaleFigure]  # key -> figure (``bench.phases.scale.FIGURES`` names them)
    load_average: tuple[float, float, float]  # os.getloadavg() as the measurements started
    cpu: CpuUse  # during the measurements
    plans: dict[str, str]  # EXPLAIN (ANALYZE, BUFFERS) of the claim and relay statements


@dataclass(frozen=True)
class ScaleRun:
    """--scale: the history grown from size to size over ``days`` days, the same figures measured at each."""

    days: int
    repeats: int
    sizes: list[ScaleSize]
    skipped: list[str]  # sizes not run, and why
    goal_ratio: float  # at most this, largest size over smallest
    goal_ms: float  # under this at the largest size
    goal_drop_ms: float  # dropping a day, whatever it holds

    def failed_figures(self) -> list[str]:
        return [f"{size.deliveries}: {key}: {figure.error}" for size in self.sizes
                for key, figure in size.figures.items() if figure.error]  # fmt: skip


@dataclass(frozen=True)
class Results:
    """A whole run. Everything but ``started_at``, ``config`` and ``notes`` is missing when the run failed early."""

    started_at: str
    config: Config
    broker_names: list[str]
    brokers: dict[str, BrokerRun]
    notes: list[str]
    code: str | None = None  # "working tree" or "git <ref>"
    environment: dict[str, Any] | None = None
    limits: Limits | None = None
    rss: list[RssRow] = dataclasses.field(default_factory=list)
    group_pss_mb: dict[str, float] = dataclasses.field(default_factory=dict)  # each group's processes, last seen
    totals: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None
    scale: ScaleRun | Failed | None = None  # --scale runs only this

    def as_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["config"] |= {"brokers": out.pop("broker_names")}
        return out

    def lost_deliveries(self) -> int:
        return sum(run.sapien.missing() for run in self.brokers.values() if isinstance(run.sapien, SapienRun))


@dataclass(frozen=True)
class StageTime:
    """One stage of ``python -m bench.sendpath``, per delivery (µs): CPU of the process, of the timing thread, wall."""

    cpu_us: float
    thread_cpu_us: float
    wall_us: float


@dataclass(frozen=True)
class SendPath:
    """``python -m bench.sendpath``: the worker's Python work per delivery between claim and record, by stage.

    ``stages`` holds the medians over ``rounds``: "prepare", "send", "decide", "record", "record_outside_db",
    "total" (the sum of ``total_stages``), "pool" (the sends through a SenderPool of the worker's concurrency, not in
    the total) and "bare" (http.client posting the same requests over one keep-alive connection).
    """

    started_at: str
    code: str  # "working tree" or "git <ref>"
    database: str  # "embedded" or "DATABASE_URL"
    deliveries: int  # per round
    subscriptions: int
    batch_size: int
    repeats: int
    body_bytes: int
    stages: dict[str, StageTime]
    skipped: dict[str, str]  # stage -> why it was not timed
    rounds: list[dict[str, StageTime]]
    errors: int  # refusals and sends not answered 200: none is expected
    total_stages: list[str]
    cpu_ratio_to_bare: float | None  # total / bare, CPU per delivery
    wall_ratio_to_bare: float | None
    deliveries_per_s: float | None  # one thread, sequentially: 1 / total wall
    bare_per_s: float | None
