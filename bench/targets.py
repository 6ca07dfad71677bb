"""The pipeline's cost goals, judged on one run's own figures, per broker (the last table of ``make bench``).

The goals are those of "cheaper per delivery" (docs/benchmarks.md, "Against the targets"): what one delivery
may cost end to end, how it must compare with the peer measured in the same run, and what the outbox may cost
the API. A goal whose figure the run did not measure (no peer, a failed phase) is "not measured", never met.
Writes are judged against those of the code the goals were set on, measured on this kind of machine
(``WRITES_BEFORE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import HALF_RATE_LABEL, Limits, PeerRun, RssRow, SapienRun
from bench.stats import fmt, fx, ratio

CPU_MS_PER_DELIVERY = 2.0  # (a), every process the run started, the bench's own included
TIMES_THE_PEER = 3.0  # (a) deliveries/s
OUTBOX_ON_OFF = 0.9  # (d) creates/s
DRAIN_VS_POSTING_LOOP = 0.6  # (a2) deliveries/s against one keep-alive client posting to the receiver
HALF_RATE_P50_MS, HALF_RATE_P99_MS = 15.0, 60.0  # (b) at half of (a)'s event rate
PEAK_RSS_MB = 80.0  # every Sapien process
# (a)'s rows, index entries and WAL bytes per delivery on the code the goals were set on (082cbb4): to be halved.
WRITES_BEFORE = (5.29, 18.6, 3431.0)


@dataclass(frozen=True)
class Verdict:
    """One goal in one run: what it asks, what the run measured, and whether that meets it (None: not measured)."""

    goal: str
    figure: str
    met: bool | None

    @property
    def word(self) -> str:
        return {True: "met", False: "NOT met", None: "not measured"}[self.met]


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def verdicts(broker: str, sapien: SapienRun, peer: PeerRun | None, limits: Limits, rss: list[RssRow]) -> list[Verdict]:
    """Each goal, judged on ``sapien``'s run with ``broker`` (and the peer's, when it ran)."""
    a, cpu = sapien.a_sustained, sapien.a_sustained.cpu
    vs_peer = ratio(a.deliveries_per_s, peer.a_sustained.deliveries_per_s) if peer else None
    d = sapien.d_api
    drain = ratio(sapien.c_relay.drain.first_to_last_per_s, limits.http_keepalive_1conn.rps)
    half = next((phase for phase in sapien.b_latency if phase.label == HALF_RATE_LABEL), None)
    p50, p99 = (half.latency_ms.p50, half.latency_ms.p99) if half else (None, None)
    writes = a.writes
    per_delivery = (
        (writes.rows_per_delivery, writes.index_entries_per_delivery, writes.wal_bytes_per_delivery)
        if writes
        else (None, None, None)
    )
    pairs = zip(per_delivery, WRITES_BEFORE, strict=True)
    halved = [None if now is None else now <= before / 2 for now, before in pairs]
    peaks = [row.peak_mb for row in rss if row.group.startswith(f"sapien-{broker}.")]
    return [
        Verdict(
            f"CPU per delivery, (a), all processes <= {CPU_MS_PER_DELIVERY} ms",
            f"all {fmt(cpu.bench_cpu_ms_per_item, 2)} ms (the system alone {fmt(cpu.system_cpu_ms_per_item, 2)})",
            _at_most(cpu.bench_cpu_ms_per_item, CPU_MS_PER_DELIVERY),
        ),
        Verdict(
            f"(a) deliveries/s >= {TIMES_THE_PEER:.0f}x the peer",
            f"{fmt(a.deliveries_per_s)} / {fmt(peer.a_sustained.deliveries_per_s if peer else None)} = {fx(vs_peer)}",
            _at_least(vs_peer, TIMES_THE_PEER),
        ),
        Verdict(
            f"(d) creates/s, outbox on / off >= {OUTBOX_ON_OFF}x",
            f"{fmt(d.on_req_per_s)} / {fmt(d.off_req_per_s)} = {fx(d.ratio_on_off)}",
            _at_least(d.ratio_on_off, OUTBOX_ON_OFF),
        ),
        Verdict(
            f"(a2) deliveries/s / the posting loop >= {DRAIN_VS_POSTING_LOOP}x",
            f"{fmt(sapien.c_relay.drain.first_to_last_per_s)} / {fmt(limits.http_keepalive_1conn.rps)} = {fx(drain)}",
            _at_least(drain, DRAIN_VS_POSTING_LOOP),
        ),
        Verdict(
            "(a) rows / index entries / WAL bytes per delivery, half of "
            + " / ".join(f"{before:,.4g}" for before in WRITES_BEFORE),
            " / ".join(fmt(value, 2) for value in per_delivery),
            None if None in halved else all(halved),
        ),
        Verdict(
            f"(b) at half of (a): p50 <= {HALF_RATE_P50_MS:.0f} ms, p99 <= {HALF_RATE_P99_MS:.0f} ms",
            f"{fmt(p50, 1)} / {fmt(p99, 1)} ms",
            None if p50 is None or p99 is None else p50 <= HALF_RATE_P50_MS and p99 <= HALF_RATE_P99_MS,
        ),
        Verdict(
            f"peak RSS of every Sapien process <= {PEAK_RSS_MB:.0f} MB",
            f"at most {fmt(max(peaks, default=None), 1)} MB ({len(peaks)} processes)",
            _at_most(max(peaks, default=None), PEAK_RSS_MB),
        ),
    ]
