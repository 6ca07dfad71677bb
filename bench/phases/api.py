"""(d) API write cost: creates/s for an organization without subscriptions, ``ESL_ENABLED`` on and off; and on,
for an organization whose one subscription matches none of its creates."""

from __future__ import annotations

from bench.config import Config
from bench.loadgen import person_body, run_load
from bench.procs import CpuMeter
from bench.progress import log
from bench.results import ApiOnOff, ApiRun, LoadSummary
from bench.stack import SapienStack
from bench.stats import ratio

ON, OFF, SUBSCRIBED = "true", "false", "true, subscribed"


def api_on_off(cfg: Config, stack: SapienStack, receiver_url: str, broker: str) -> ApiOnOff:
    """API create req/s, closed loop, for an organization without subscriptions: the write path's cost only.

    An event of an organization without an active subscription wakes no relay pass (it waits for the relay's
    poll), so the same creates are also run for an organization with one subscription, to ``system.ping``: each
    commit then wakes the relay, whose pass finds nothing to deliver. gunicorn is restarted for each run,
    alternating the three so that a burst of foreign load hits each, and restarted once more with the
    environment's own ``ESL_ENABLED`` for the phases that follow.
    """
    tokens = {}
    for kind, subs in ((ON, "0"), (SUBSCRIBED, "1")):
        tenant = stack.side("tenant", "--name", f"bench-{broker}-d-{subs}", "--subs", subs, "--events", "system.ping",
                            "--callback", f"{receiver_url}/x")  # fmt: skip
        tokens[kind] = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
    tokens[OFF] = tokens[ON]
    api = f"{stack.base_url}/api/persons"
    runs: dict[str, ApiRun] = {}
    rounds = 1 if cfg.quick else 2
    for label, kind in [(f"{kind} #{n}", kind) for n in range(1, rounds + 1) for kind in (ON, OFF, SUBSCRIBED)]:
        enabled = "false" if kind == OFF else "true"
        stack.stop("web")
        stack.start("web", ESL_ENABLED=enabled)
        run_load(api, tokens[kind], person_body("dw"), count=20 if cfg.quick else 40, threads=cfg.threads)  # warm-up
        meter = CpuMeter(stack.sampler)
        result = run_load(api, tokens[kind], person_body("d"), count=cfg.api_requests, threads=cfg.threads)
        summary = LoadSummary.of(result)
        runs[label] = ApiRun(**vars(summary), cpu=meter.stop(work_items=result.ok))
        log(f"[{broker}] (d) {kind}: {result.rate:.0f} creates/s ({len(result.errors)} errors)")
    stack.stop("web")
    stack.start("web")

    def mean(kind: str, value: list[float]) -> float:
        values = [v for label, v in zip(runs, value, strict=True) if label.split(" #")[0] == kind]
        return sum(values) / len(values)

    rates = [run.req_per_s for run in runs.values()]
    cpus = [run.cpu.bench_cpu_ms_per_item or 0.0 for run in runs.values()]
    on, off, subscribed = mean(ON, rates), mean(OFF, rates), mean(SUBSCRIBED, rates)
    cpu_on, cpu_off = mean(ON, cpus), mean(OFF, cpus)
    return ApiOnOff(runs=runs, on_req_per_s=on, off_req_per_s=off, ratio_on_off=ratio(on, off), cpu_ms_on=cpu_on,
                    cpu_ms_off=cpu_off, cpu_ratio_off_on=ratio(cpu_off, cpu_on), subscribed_req_per_s=subscribed,
                    ratio_subscribed_off=ratio(subscribed, off), cpu_ms_subscribed=mean(SUBSCRIBED, cpus))  # fmt: skip
