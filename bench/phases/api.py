"""(d) API write cost: creates/s for an organization without subscriptions, ``ESL_ENABLED`` on and off."""

from __future__ import annotations

from bench.config import Config
from bench.loadgen import person_body, run_load
from bench.procs import CpuMeter
from bench.progress import log
from bench.results import ApiOnOff, ApiRun, LoadSummary
from bench.stack import SapienStack
from bench.stats import ratio


def api_on_off(cfg: Config, stack: SapienStack, receiver_url: str, broker: str) -> ApiOnOff:
    """API create req/s, closed loop, for an organization without subscriptions: the write path's cost only.

    gunicorn is restarted for each run, alternating on and off so that a burst of foreign load hits both
    sides, and restarted once more with the environment's own ``ESL_ENABLED`` for the phases that follow.
    """
    tenant = stack.side("tenant", "--name", f"bench-{broker}-d", "--subs", "0", "--callback", f"{receiver_url}/x")
    token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
    api = f"{stack.base_url}/api/persons"
    runs: dict[str, ApiRun] = {}
    rounds = 1 if cfg.quick else 2
    for label, enabled in [(f"{flag} #{n}", flag) for n in range(1, rounds + 1) for flag in ("true", "false")]:
        stack.stop("web")
        stack.start("web", ESL_ENABLED=enabled)
        run_load(api, token, person_body("dw"), count=20 if cfg.quick else 40, threads=cfg.threads)  # warm-up
        meter = CpuMeter(stack.sampler)
        result = run_load(api, token, person_body("d"), count=cfg.api_requests, threads=cfg.threads)
        summary = LoadSummary.of(result)
        runs[label] = ApiRun(**vars(summary), cpu=meter.stop(work_items=result.ok))
        log(f"[{broker}] (d) ESL_ENABLED={enabled}: {result.rate:.0f} creates/s ({len(result.errors)} errors)")
    stack.stop("web")
    stack.start("web")

    def mean(flag: str, value: list[float]) -> float:
        values = [v for label, v in zip(runs, value, strict=True) if label.startswith(flag)]
        return sum(values) / len(values)

    rates = [run.req_per_s for run in runs.values()]
    cpus = [run.cpu.bench_cpu_ms_per_item or 0.0 for run in runs.values()]
    on, off = mean("true", rates), mean("false", rates)
    cpu_on, cpu_off = mean("true", cpus), mean("false", cpus)
    return ApiOnOff(runs=runs, on_req_per_s=on, off_req_per_s=off, ratio_on_off=ratio(on, off), cpu_ms_on=cpu_on,
                    cpu_ms_off=cpu_off, cpu_ratio_off_on=ratio(cpu_off, cpu_on))  # fmt: skip
