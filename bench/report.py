"""The printed report: one table per figure, from a run's ``Results`` (stdout; progress goes to stderr)."""

from __future__ import annotations

from typing import Any

from bench.phases.scale import FIGURES
from bench.results import DeliveryPhase, Failed, PeerRun, Profile, Results, RssRow, SapienRun, ScaleRun
from bench.stats import ratio


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def fx(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)))
    print("  " + "  ".join("-" * width for width in widths))
    for row in rows:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def report(results: Results) -> None:
    """Every table of a run that got as far as measuring the limits (or, with --scale, the scale tables)."""
    if results.scale is not None:
        if isinstance(results.scale, Failed):
            print(f"\nScale run failed: {results.scale.error}")
        else:
            scale_report(results.scale)
        rss_table(results.rss)
        return
    limits = results.limits
    assert limits is not None, "report() needs a run that measured the physical limits"
    http, pg1, pg8 = limits.http_keepalive_1conn, limits.pg_insert_1conn, limits.pg_insert_8conn
    table("Physical limits (same run)", ["probe", "rate", "p50"], [
        ["HTTP POST, 1 keep-alive conn (http.client) -> receiver", f"{fmt(http.rps)} req/s",
         f"{fmt(http.p50_ms, 3)} ms"],
        ["PG single-row INSERT, 1 conn, autocommit", f"{fmt(pg1.rows_per_s)} rows/s",
         f"{fmt(pg1.p50_ms, 3)} ms"],
        ["PG single-row INSERT, 8 conns, autocommit", f"{fmt(pg8.rows_per_s)} rows/s",
         f"{fmt(pg8.p50_ms, 3)} ms"],
    ])  # fmt: skip
    for broker, run in results.brokers.items():
        if isinstance(run.sapien, Failed):
            print(f"\n[{broker}] Sapien run failed: {run.sapien.error}")
            continue
        broker_report(results, broker, run.sapien, run.peer if isinstance(run.peer, PeerRun) else None)
        if isinstance(run.peer, Failed):
            print(f"\n[{broker}] peer: {run.peer.error}")
        soak_report(broker, run.sapien)
    rss_table(results.rss)
    for broker, run in results.brokers.items():
        for who, system in (("sapien", run.sapien), ("peer", run.peer)):
            if isinstance(system, SapienRun | PeerRun) and system.a_sustained.profile:
                profile_report(f"[{broker}] {who}", system.a_sustained.profile)
    print(f"\nAll processes: {results.totals}")


def broker_report(results: Results, broker: str, sapien: SapienRun, peer: PeerRun | None) -> None:
    """(a), its CPU, (b), (c), (a2), (f), (g), (d) for one broker; the peer's (a) and (b) beside Sapien's."""
    limits = results.limits
    assert limits is not None
    http, pg8 = limits.http_keepalive_1conn, limits.pg_insert_8conn
    subs, threads = results.config.subs, results.config.threads
    a, pa = sapien.a_sustained, peer.a_sustained if peer else None
    pa_rate = pa.deliveries_per_s if pa else None
    systems: list[tuple[str, DeliveryPhase]] = [("Sapien", a), *([("django-webhook", pa)] if pa else [])]
    table(f"[{broker}] (a) sustained end-to-end, {a.events} events x {subs} subs", [
        "system", "deliveries/s", "events/s", "API writes/s", "missing", "dups", "CPU ms/delivery",
        "foreign cores", "vs peer", "vs HTTP limit"], [
        [who, fmt(x.deliveries_per_s), fmt(x.events_per_s), fmt(x.load.req_per_s),
         fmt(x.missing), fmt(x.duplicates), fmt(x.cpu.bench_cpu_ms_per_item, 2),
         fmt(x.cpu.foreign_cores, 2), fx(ratio(x.deliveries_per_s, pa_rate)),
         fx(ratio(x.deliveries_per_s, http.rps))]
        for who, x in systems
    ])  # fmt: skip
    by_group = [x.cpu.cpu_seconds_by_group for _, x in systems]
    sapien_cpu, peer_cpu = by_group[0], by_group[1] if pa else {}
    groups = sorted({g for cpu in by_group for g in cpu})
    table(
        f"[{broker}] (a) CPU seconds by process during the phase",
        ["process group", "Sapien run", "peer run"],
        [
            [g, fmt(sapien_cpu.get(g), 2), fmt(peer_cpu.get(g), 2)]
            for g in groups
            if any(cpu.get(g) for cpu in by_group)
        ],
    )
    rows = []
    peer_b = peer.b_latency if peer else []
    for who, phases in (("Sapien", sapien.b_latency), ("django-webhook", peer_b)):
        for index, phase in enumerate(phases):
            lat = phase.latency_ms
            other = peer_b if who == "Sapien" else []
            peer_p99 = other[index].latency_ms.p99 if index < len(other) else None
            rows.append([who, f"{phase.label} = {fmt(phase.target_rate, 1)}/s",
                         fmt(phase.achieved_rate, 1), fmt(lat.p50, 1), fmt(lat.p95, 1),
                         fmt(lat.p99, 1), fmt(lat.max, 1), fmt(phase.missing),
                         fmt(phase.cpu.foreign_cores, 2),
                         fx(ratio(lat.p99, peer_p99)), fx(ratio(lat.p50, http.p50_ms))])  # fmt: skip
    table(f"[{broker}] (b) latency event timestamp -> receipt (ms)", [
        "system", "rate", "achieved/s", "p50", "p95", "p99", "max", "missing", "foreign cores", "p99 vs peer",
        "p50 vs 1 HTTP round trip"], rows)  # fmt: skip
    c = sapien.c_relay
    table(f"[{broker}] (c) relay, {c.events} outbox rows x {subs} subs", [
        "relay", "events/s", "delivery rows/s", "vs raw SQL", "vs peer"], [
        ["Sapien relay_pending", fmt(c.events_per_s), fmt(c.deliveries_per_s),
         fx(c.ratio_to_baseline), "n/a (peer has no outbox)"],
        ["raw SQL DELETE..SKIP LOCKED -> INSERT", fmt(c.baseline_events_per_s),
         fmt(c.baseline_deliveries_per_s), "1.00x", ""],
    ])  # fmt: skip
    drain = c.drain
    cpu = drain.cpu
    worker_cpu = sum(v for k, v in cpu.cpu_seconds_by_group.items() if k.endswith(".worker"))
    table(f"[{broker}] (a2) delivery side alone: {drain.expected} due deliveries released at once", [
        "deliveries/s (first->last receipt)", "missing", "dups", "first receipt after",
        "worker CPU ms/delivery",
        "CPU ms/delivery (all)", "foreign cores", "vs HTTP limit"], [[
        fmt(drain.first_to_last_per_s), fmt(drain.missing), fmt(drain.duplicates),
        f"{fmt(drain.first_receipt_after_s, 2)} s",
        fmt(1000 * worker_cpu / max(drain.unique, 1), 2), fmt(cpu.bench_cpu_ms_per_item, 2),
        fmt(cpu.foreign_cores, 2), fx(ratio(drain.first_to_last_per_s, http.rps))]])  # fmt: skip
    f = sapien.f_isolation
    clean_p99 = f.clean.latency_ms.p99
    table(f"[{broker}] (f) healthy subscriptions' first attempts at {f.rate} events/s: {f.healthy} "
          f"healthy alone, then beside {f.failing} answering 500 and {f.slow} taking 2 s", [
        "run", "p50 ms", "p95 ms", "p99 ms", "max ms", "missing", "requests to bad subs", "p99 vs clean"], [
        [label, *(fmt(value, 1) for value in (run.latency_ms.p50, run.latency_ms.p95, run.latency_ms.p99,
                                              run.latency_ms.max)),
         fmt(run.missing), fmt(run.other_requests), fx(ratio(run.latency_ms.p99, clean_p99))]
        for label, run in (("clean", f.clean), ("mixed", f.mixed))])  # fmt: skip
    g = sapien.g_held_transaction
    table(f"[{broker}] (g) (a)'s workload while one transaction stays open for {g.hold_seconds:.0f} s", [
        "deliveries/s", "vs (a)", "per window (deliveries/s)", "last window vs (a)", "dead delivery rows",
        "missing", "dups"], [[
        fmt(g.deliveries_per_s), fx(g.ratio_to_a), " ".join(fmt(v) for v in g.per_window_deliveries_per_s),
        fx(g.last_window_ratio_to_a), fmt(g.dead_delivery_rows_at_end), fmt(g.missing),
        fmt(g.duplicates)]])  # fmt: skip
    d = sapien.d_api
    table(f"[{broker}] (d) API create, closed loop, {threads} threads, no subscriptions", [
        "ESL_ENABLED", "creates/s", "p50 ms", "p99 ms", "CPU ms/create", "foreign cores", "vs off",
        "vs PG INSERT 8 conns"],
        [[label, fmt(run_.req_per_s), fmt(run_.p50_ms, 1), fmt(run_.p99_ms, 1),
          fmt(run_.cpu.bench_cpu_ms_per_item, 2), fmt(run_.cpu.foreign_cores, 2),
          fx(ratio(run_.req_per_s, d.off_req_per_s)), fx(ratio(run_.req_per_s, pg8.rows_per_s))]
         for label, run_ in d.runs.items()])  # fmt: skip
    print(
        f"  ratio on/off, creates/s (means): {fx(d.ratio_on_off)}; by CPU per create (off/on): "
        f"{fx(d.cpu_ratio_off_on)} ({fmt(d.cpu_ms_on, 2)} vs {fmt(d.cpu_ms_off, 2)} ms)"
    )


def scale_report(run: ScaleRun) -> None:
    """Figure x size (median ms), the largest size over the smallest, and what misses the goals; then the loads."""
    sizes = run.sizes
    if not sizes:
        print(f"\nScale: no size was measured ({'; '.join(run.skipped) or 'none given'})")
        return
    first, last = sizes[0], sizes[-1]
    label = f"{short(last.deliveries)}/{short(first.deliveries)}"
    rows = []
    for key, name in FIGURES.items():
        medians = [size.figures[key].median_ms if key in size.figures else None for size in sizes]
        errors = [error for size in sizes if key in size.figures and (error := size.figures[key].error)]
        goal_ms = run.goal_drop_ms if key.startswith("drop_day") else run.goal_ms
        change = ratio(medians[-1], medians[0]) if len(sizes) > 1 else None
        misses = [f"over {fmt(goal_ms)} ms"] if medians[-1] is not None and medians[-1] > goal_ms else []
        misses += [f"over {run.goal_ratio:g}x"] if change is not None and change > run.goal_ratio else []
        misses += [f"FAILED: {errors[0][:80]}"] if errors else []
        rows.append([name, *(fmt(value, 1) for value in medians), fx(change), ", ".join(misses) or "ok"])
    table(f"Scale: median of {run.repeats} (ms), {run.days} days of history, one subscription; goals: "
          f"each figure at most {run.goal_ratio:g}x from {short(first.deliveries)} to {short(last.deliveries)} and "
          f"under {fmt(run.goal_ms)} ms there, a day's drop under {fmt(run.goal_drop_ms)} ms",
          ["figure", *(short(size.deliveries) for size in sizes), label, "goal"], rows)  # fmt: skip
    print(f"  at {short(last.deliveries)}:")
    for key, figure in last.figures.items():
        if figure.detail:
            print(f"    {FIGURES[key].strip()}: {figure.detail}")
    table("Scale: loading (set-based SQL, synchronous_commit off; each delivery with its event and one attempt)", [
        "deliveries", "added", "load s", "deliveries/s", "VACUUM ANALYZE s", "CHECKPOINT s", "history MB",
        "load avg (1 min)", "foreign cores while measuring"], [
        [f"{size.deliveries:,}", f"{size.load.added:,}", fmt(size.load.seconds, 1),
         fmt(size.load.deliveries_per_s), fmt(size.load.vacuum_analyze_seconds, 1),
         fmt(size.load.checkpoint_seconds, 1),
         fmt(sum(size.load.history_mb.values())), fmt(size.load_average[0], 2), fmt(size.cpu.foreign_cores, 2)]
        for size in sizes])  # fmt: skip
    for skipped in run.skipped:
        print(f"  skipped {skipped}")


def short(count: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    for factor, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= factor and count % (factor // 10) == 0:
            return f"{count / factor:g}{suffix}"
    return str(count)


def soak_report(broker: str, sapien: SapienRun) -> None:
    soak = sapien.soak
    if not soak:
        return
    print(f"\n[{broker}] (e) soak {soak.rate:.1f} events/s x {soak.seconds:.0f} s: "
          f"{soak.unique}/{soak.expected} delivered, missing {soak.missing}, "
          f"p50/p99 {soak.latency_ms.p50}/{soak.latency_ms.p99} ms")  # fmt: skip
    table("  RSS growth, after 1 min -> end (PostgreSQL's RSS includes the shared buffers it touched)",
          ["group/pid", "process", "MB after 1 min", "MB at end", "growth"], [
        [key, value.process[:50], fmt(value.after_1min_mb, 1), fmt(value.end_mb, 1), f"{value.growth_pct:+.1f}%"]
        for key, value in soak.rss_growth.items()])  # fmt: skip


def profile_report(title: str, profile: Profile) -> None:
    print(f"\n{title}: py-spy during (a), share of each process's samples")
    for process, summary in profile.items():
        if not summary:
            continue
        print(f"  {process} ({int(summary['samples'][0][1])} samples)")
        for key, label, count in (("by_package", "running code in", 8), ("self", "hottest frames", 5),
                                  ("app_total", "app code incl. callees", 10)):  # fmt: skip
            print(f"    {label}: " + "; ".join(f"{share:.0%} {frame}" for frame, share in summary[key][:count]))


def rss_table(rss: list[RssRow]) -> None:
    """Peak RSS per process group: the leader (gunicorn master, Celery parent, ...) and its children."""
    by_group: dict[str, dict[str, list[float]]] = {}
    for row in rss:
        kind = "leader" if row.process == "leader" else "child"
        by_group.setdefault(row.group, {"leader": [], "child": []})[kind].append(row.peak_mb)
    peer = {g.split(".", 1)[-1]: v for g, v in by_group.items() if g.startswith("peer-")}
    rows = []
    for group, peaks in by_group.items():
        leader, child = max(peaks["leader"], default=None), max(peaks["child"], default=None)
        other = peer.get(group.split(".", 1)[-1]) if group.startswith("sapien-") else None
        rows.append([
            group, str(len(peaks["leader"])), fmt(leader, 1), str(len(peaks["child"])), fmt(child, 1),
            fx(ratio(leader, max(other["leader"], default=None))) if other else "",
            fx(ratio(child, max(other["child"], default=None))) if other else "",
        ])  # fmt: skip
    table("(e) peak RSS (VmHWM, MB); leader = gunicorn master / Celery parent / the process; children = workers",
          ["group", "starts", "leader", "children", "child max", "leader vs peer", "child vs peer"], rows)  # fmt: skip
