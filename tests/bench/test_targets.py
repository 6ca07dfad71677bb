"""The cost goals read a run's own figures: met, not met, or not measured when the run did not measure them."""

from types import SimpleNamespace as Figures
from typing import Any

from bench.results import HALF_RATE_LABEL, RssRow
from bench.targets import verdicts


def run(*, cpu_all=1.9, cpu_system=1.6, rate=900.0, on=500.0, off=520.0, drain=4000.0, rows=5.0, p50=9.0, p99=30.0):
    writes = Figures(rows_per_delivery=rows, index_entries_per_delivery=20.0, wal_bytes_per_delivery=4000.0)
    half = Figures(label=HALF_RATE_LABEL, latency_ms=Figures(p50=p50, p99=p99))
    return Figures(
        a_sustained=Figures(
            deliveries_per_s=rate, writes=writes,
            cpu=Figures(bench_cpu_ms_per_item=cpu_all, system_cpu_ms_per_item=cpu_system),
        ),
        d_api=Figures(on_req_per_s=on, off_req_per_s=off, ratio_on_off=on / off),
        c_relay=Figures(drain=Figures(first_to_last_per_s=drain)),
        b_latency=[Figures(label="fixed 100/s", latency_ms=Figures(p50=1.0, p99=2.0)), half],
    )  # fmt: skip


LIMITS: Any = Figures(http_keepalive_1conn=Figures(rps=6000.0))
RSS = [RssRow(group="sapien-redis.web", pid=1, process="leader", peak_mb=78.0),
       RssRow(group="sapien-redis.worker", pid=2, process="python -m sapien.worker", peak_mb=81.0),
       RssRow(group="sapien-amqp.web", pid=3, process="leader", peak_mb=99.0)]  # fmt: skip


def test_each_goal_is_judged_on_the_runs_figures() -> None:
    peer: Any = Figures(a_sustained=Figures(deliveries_per_s=250.0))

    judged = [(v.goal.split(" ")[0], v.word) for v in verdicts("redis", run(), peer, LIMITS, RSS)]

    assert judged == [
        ("CPU", "met"),  # 1.9 ms <= 2.0
        ("(a)", "met"),  # 900 / 250 = 3.6x the peer
        ("(d)", "met"),  # 500 / 520 = 0.96x
        ("(a2)", "met"),  # 4000 / 6000 = 0.67x the posting loop
        ("(a)", "NOT met"),  # 5.0 rows per delivery is not half of 5.29
        ("(b)", "met"),  # 9 / 30 ms at half of (a)
        ("peak", "NOT met"),  # this broker's worker peaked at 81 MB (the other broker's 99 MB is not this run's)
    ]


def test_a_figure_over_its_goal_is_not_met_and_one_not_measured_is_never_met() -> None:
    slow = run(cpu_all=2.4, cpu_system=1.9, on=400.0, off=520.0, drain=3000.0, p50=16.0)

    words = [v.word for v in verdicts("redis", slow, None, LIMITS, RSS[:1])]

    assert words == ["NOT met", "not measured", "NOT met", "NOT met", "NOT met", "NOT met", "met"]
