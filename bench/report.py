"""The printed report: one table per figure, from a run's ``Results`` (stdout; progress goes to stderr)."""

from __future__ import annotations

from bench.phases.scale import FIGURES
from bench.results import (
    DeliveryPhase,
    Failed,
    PeerRun,
    Profile,
    Results,
    RssRow,
    SapienRun,
    ScaleRun,
    SendPath,
    Writes,
)
from bench.stats import fmt, fx, ratio
from bench.targets import verdicts


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
        rss_table(results.rss, results.group_pss_mb)
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
    rss_table(results.rss, results.group_pss_mb)
    targets_report(results)
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
        "system", "deliveries/s", "events/s", "API writes/s", "missing", "dups", "CPU ms/delivery (all)",
        "CPU ms/delivery (system)", "foreign cores", "vs peer", "vs HTTP limit"], [
        [who, fmt(x.deliveries_per_s), fmt(x.events_per_s), fmt(x.load.req_per_s),
         fmt(x.missing), fmt(x.duplicates), fmt(x.cpu.bench_cpu_ms_per_item, 2),
         fmt(x.cpu.system_cpu_ms_per_item, 2), fmt(x.cpu.foreign_cores, 2), fx(ratio(x.deliveries_per_s, pa_rate)),
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
            *(
                [g, fmt(sapien_cpu.get(g), 2), fmt(peer_cpu.get(g), 2)]
                for g in groups
                if any(cpu.get(g) for cpu in by_group)
            ),
            [
                "bench (the API load, its polling)",
                fmt(a.cpu.own_cpu_seconds, 2),
                fmt(pa.cpu.own_cpu_seconds if pa else None, 2),
            ],
        ],
    )
    print("  all: every row; system: its processes, broker and PostgreSQL, without the receiver and the bench")
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
    writes_report(broker, sapien, peer)
    d = sapien.d_api
    table(f"[{broker}] (d) API create, closed loop, {threads} threads, no subscriptions (subscribed: one that "
          "matches no create)", [
        "ESL_ENABLED", "creates/s", "p50 ms", "p99 ms", "CPU ms/create", "foreign cores", "vs off",
        "vs PG INSERT 8 conns"],
        [[label, fmt(run_.req_per_s), fmt(run_.p50_ms, 1), fmt(run_.p99_ms, 1),
          fmt(run_.cpu.bench_cpu_ms_per_item, 2), fmt(run_.cpu.foreign_cores, 2),
          fx(ratio(run_.req_per_s, d.off_req_per_s)), fx(ratio(run_.req_per_s, pg8.rows_per_s))]
         for label, run_ in d.runs.items()])  # fmt: skip
    print(
        f"  ratio on/off, creates/s (means): {fx(d.ratio_on_off)}; by CPU per create (off/on): "
        f"{fx(d.cpu_ratio_off_on)} ({fmt(d.cpu_ms_on, 2)} vs {fmt(d.cpu_ms_off, 2)} ms); subscribed/off: "
        f"{fx(d.ratio_subscribed_off)} ({fmt(d.cpu_ms_subscribed, 2)} ms per create)"
    )


def writes_report(broker: str, sapien: SapienRun, peer: PeerRun | None) -> None:
    """Rows, index entries and WAL per delivery in (a) and (a2), and by table (bench/writes.py)."""
    peer_writes = peer.a_sustained.writes if peer else None
    measured = [(label, writes) for label, writes in (
        ("Sapien (a) end to end", sapien.a_sustained.writes),
        ("Sapien (a2) delivery side alone", sapien.c_relay.drain.writes),
        ("django-webhook (a) end to end", peer_writes)) if writes]  # fmt: skip
    if not measured:
        return

    def vs_peer(label: str, writes: Writes) -> str:
        if peer_writes is None or not label.endswith("(a) end to end") or label.startswith("django"):
            return ""
        return (f"{fx(ratio(writes.rows_per_delivery, peer_writes.rows_per_delivery))} rows, "
                f"{fx(ratio(writes.wal_bytes_per_delivery, peer_writes.wal_bytes_per_delivery))} WAL")  # fmt: skip

    def per(value: float, deliveries: int) -> str:
        return fmt(value / deliveries, 2) if deliveries else "-"

    table(f"[{broker}] writes per delivery (PostgreSQL's counters around the phase; WAL of the whole server)", [
        "phase", "deliveries", "rows", "index entries", "HOT share of updates", "WAL bytes", "WAL records",
        "full-page images", "vs peer", "counters"], [
        [label, fmt(w.deliveries), fmt(w.rows_per_delivery, 2),
         fmt(w.index_entries_per_delivery, 2) + (" (at most)" if w.index_entries_upper_bound else ""),
         "-" if w.hot_share is None else f"{w.hot_share:.0%}", fmt(w.wal_bytes_per_delivery),
         per(w.wal_records, w.deliveries), per(w.wal_fpi, w.deliveries), vs_peer(label, w),
         f"settled in {w.settle_seconds:.1f} s" if w.settled else "STILL MOVING"]
        for label, w in measured])  # fmt: skip
    for label, w in measured:
        if w.subtracted:
            print(f"  {label}: {w.subtracted} taken out")
    rows = []
    for label, w in measured:
        if label.startswith("django"):
            continue
        for name, t in w.tables.items():
            others = f" ({', '.join(sorted(w.other_tables))})" if name == "others" and w.other_tables else ""
            partial = f" ({t.partial_indexes} partial)" if t.partial_indexes else ""
            rows.append([label.split(" ", 2)[1], f"{name}{others}"[:90], per(t.inserts, w.deliveries),
                         per(t.updates, w.deliveries), "-" if not t.updates else f"{t.hot_updates / t.updates:.0%}",
                         per(t.deletes, w.deliveries), per(t.index_entries, w.deliveries),
                         f"{t.indexes}{partial}"])  # fmt: skip
    table(f"[{broker}] writes per delivery by table (partitions folded in; index entries: (inserts + non-HOT "
          "updates) x indexes, an upper bound where an index is partial)",
          ["phase", "table", "inserts", "updates", "HOT", "deletes", "index entries", "indexes"], rows)  # fmt: skip


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


def targets_report(results: Results) -> None:
    """The cost goals (bench/targets.py), judged on this run's figures, per broker."""
    assert results.limits is not None
    for broker, run in results.brokers.items():
        if isinstance(run.sapien, Failed):
            continue
        peer = run.peer if isinstance(run.peer, PeerRun) else None
        rows = [[v.goal, v.figure, v.word] for v in verdicts(broker, run.sapien, peer, results.limits, results.rss)]
        table(f"[{broker}] the cost goals in this run", ["goal", "this run", ""], rows)


def rss_table(rss: list[RssRow], group_pss: dict[str, float]) -> None:
    """Memory per process group: the leader (gunicorn master, the worker's parent, ...) and its children; peak RSS over
    the run, and RSS and PSS when last seen (just before the group was stopped, or at the run's end)."""
    by_group: dict[str, dict[str, list[RssRow]]] = {}
    for row in rss:
        kind = "leader" if row.process == "leader" else "child"
        by_group.setdefault(row.group, {"leader": [], "child": []})[kind].append(row)

    def most(rows: list[RssRow], field: str) -> float | None:
        return max((value for row in rows if (value := getattr(row, field)) is not None), default=None)

    peer = {g.split(".", 1)[-1]: v for g, v in by_group.items() if g.startswith("peer-")}
    rows = []
    for group, kinds in by_group.items():
        leaders, children = kinds["leader"], kinds["child"]
        other = peer.get(group.split(".", 1)[-1]) if group.startswith("sapien-") else None
        rows.append([
            group, str(len(leaders)), fmt(most(leaders, "peak_mb"), 1), fmt(most(leaders, "rss_mb"), 1),
            fmt(most(leaders, "pss_mb"), 1), str(len(children)), fmt(most(children, "peak_mb"), 1),
            fmt(most(children, "rss_mb"), 1), fmt(most(children, "pss_mb"), 1), fmt(group_pss.get(group), 1),
            fx(ratio(most(leaders, "peak_mb"), most(other["leader"], "peak_mb"))) if other else "",
            fx(ratio(most(children, "peak_mb"), most(other["child"], "peak_mb"))) if other else "",
        ])  # fmt: skip
    table("(e) memory (MB): peak RSS (VmHWM) over the run; RSS and PSS (smaps_rollup) when last seen, just before "
          "the group stopped; leader = gunicorn master / the worker's parent / the process, children = its workers",
          ["group", "starts", "leader peak RSS", "RSS", "PSS", "children", "child max: peak RSS", "RSS", "PSS",
           "group PSS (last start)", "leader peak vs peer", "child peak vs peer"], rows)  # fmt: skip


SENDPATH_ROWS = {
    "prepare": "prepare: outbound.prepare_batch (body, headers, signatures)",
    "send": "send: transport.post, one keep-alive session",
    "decide": "decide: retry.decide",
    "record": "record: claims.record_outcomes, client side (real rows)",
    "record_outside_db": "  of which outside database calls (parameters, logging)",
    "total": "total",
    "pool": "send through senders.SenderPool, as the worker (not in total)",
    "bare": "bare http.client keep-alive POST, same requests",
}


def sendpath_report(result: SendPath) -> None:
    """The send path per delivery, stage by stage, against the bare posting loop."""
    stages = result.stages
    total_cpu = stages["total"].cpu_us if "total" in stages else None
    rows = []
    for key, label in SENDPATH_ROWS.items():
        if key in result.skipped:
            rows.append([label, "-", "-", "-", "-", f"skipped: {result.skipped[key][:70]}"])
        elif key in stages:
            stage = stages[key]
            share = f"{stage.cpu_us / total_cpu:.0%}" if total_cpu and key in (*result.total_stages,
                                                                            "record_outside_db") else ""  # fmt: skip
            rows.append([label, fmt(stage.cpu_us, 1), fmt(stage.thread_cpu_us, 1), fmt(stage.wall_us, 1), share, ""])
    table(f"Send path per delivery ({result.code}): {result.deliveries} deliveries x {result.repeats} rounds "
          f"(median), batches of {result.batch_size}, {result.body_bytes} B bodies, {result.subscriptions} subs/event",
          ["stage", "CPU us", "thread CPU us", "wall us", "share of CPU", ""], rows)  # fmt: skip
    print(f"  total ({' + '.join(result.total_stages)}) / bare loop: CPU {fx(result.cpu_ratio_to_bare)}, "
          f"wall {fx(result.wall_ratio_to_bare)}; one thread: {fmt(result.deliveries_per_s)} deliveries/s vs "
          f"{fmt(result.bare_per_s)} bare posts/s ({fx(ratio(result.deliveries_per_s, result.bare_per_s))}); "
          f"errors {result.errors}")  # fmt: skip
