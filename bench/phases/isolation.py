"""(f) isolation: healthy subscriptions' first attempts, with and without failing and slow subscriptions beside them."""

from __future__ import annotations

import psycopg

from bench.config import Config
from bench.loadgen import person_body, run_load
from bench.phases.delivery import sapien_stages
from bench.progress import log
from bench.receiving import ReceiverClient
from bench.results import Deliveries, Isolation, IsolationRun
from bench.stack import SapienStack
from bench.stats import ratio

HEALTHY, FAILING, SLOW = 18, 2, 1  # ~10 % answering 500, ~5 % taking 2 s


def isolation_phase(
    cfg: Config, stack: SapienStack, receiver: ReceiverClient, receiver_url: str, broker: str,
    sustained_deliveries_per_s: float,
) -> Isolation:  # fmt: skip
    """Two organizations at the same event rate (half of (a)'s delivery rate over 21 subscriptions): one with
    18 healthy subscriptions only, one with the same 18 plus 2 answering 500 (retried) and 1 answering after
    2 s. Latency of the healthy subscriptions' first attempts, event timestamp -> receipt, in both.
    """
    subs = HEALTHY + FAILING + SLOW
    rate = cfg.isolation_rate or round(max(0.5 * sustained_deliveries_per_s / subs, 1.0), 1)
    bad = [f"{receiver_url}/fail?sub={i}" for i in range(FAILING)]
    bad += [f"{receiver_url}/slow?sub={i}" for i in range(SLOW)]
    runs: dict[str, IsolationRun] = {}
    for label, extra in (("clean", []), ("mixed", bad)):
        args = ["tenant", "--name", f"bench-{broker}-f-{label}", "--subs", str(HEALTHY),
                "--callback", f"{receiver_url}/healthy"]  # fmt: skip
        for url in extra:
            args += ["--extra-callback", url]
        tenant = stack.side(*args)
        token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
        log(f"[{broker}] (f) {label}: {rate} events/s x {HEALTHY} healthy"
            f"{' + 2 failing + 1 slow' if extra else ''} subscriptions for {cfg.isolation_seconds:.0f} s")  # fmt: skip
        receiver.reset()
        count = max(int(rate * cfg.isolation_seconds), 1)
        load = run_load(f"{stack.base_url}/api/persons", token, person_body(f"iso-{broker}-{label}"), count=count,
                        threads=cfg.threads, rate=rate, max_seconds=cfg.isolation_seconds * 1.2 + 1)  # fmt: skip
        expected = load.ok * HEALTHY
        healthy, others = receiver.collect(expected, "/healthy")
        first = [receipt for receipt in healthy if receipt.attempt == "1"]
        run = runs[label] = IsolationRun(
            **Deliveries.count(first, expected=expected, start=load.first_start).fields(), other_requests=others
        )
        lat = run.latency_ms
        log(f"    healthy first attempts p50/p95/p99 {lat.p50}/{lat.p95}/{lat.p99} ms, "
            f"missing {run.missing}, {run.other_requests} requests to the failing and slow "
            "subscriptions")  # fmt: skip
        by_stage = sapien_stages(stack.env["DATABASE_URL"])(first)
        log("    p50 / p99 by stage (ms): " + ", ".join(f"{k} {v.p50} / {v.p99}" for k, v in by_stage.items()))
        if extra:  # the failing subscriptions would go on retrying into the phases that follow
            with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
                conn.execute("UPDATE subscriptions_subscription SET active = false WHERE organization_id = %s",
                             (tenant["organization_id"],))  # fmt: skip
    clean, mixed = runs["clean"], runs["mixed"]
    return Isolation(rate=rate, healthy=HEALTHY, failing=FAILING, slow=SLOW, clean=clean, mixed=mixed,
                     p99_ratio_mixed_to_clean=ratio(mixed.latency_ms.p99, clean.latency_ms.p99))  # fmt: skip
