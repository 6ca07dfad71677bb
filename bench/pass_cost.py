"""What one event costs on its way through the pipeline, stage by stage, in one process: ``python -m bench.pass_cost``.

    .venv/bin/python -m bench.pass_cost [--events 1000] [--subs 3] [--ref HEAD]

The shape of (a) at its usual rate, where every relay pass finds one event: per event, in this order,

    record   the event written as the API writes it (sapien.events.outbox.record_event, its own transaction)
    relay    one relay pass that fans it out and hands its deliveries over born claimed (deliveries.relay)
    task     the worker's task for that handed batch: read it, sign, send to the bench's receiver on loopback,
             record the outcomes (deliveries.dispatch.send_due_deliveries, as the deliver_claimed task runs it)

Each stage's CPU is this process's (``time.process_time``: every thread, the sending threads included) and the
PostgreSQL backend's that served it (from ``/proc``, when the server runs on this machine; "n/a" otherwise).
What is not here: the API request around the record, Celery's own work for the hand-over message, and
the broker. Django runs against the embedded PostgreSQL in a temporary directory, or ``DATABASE_URL`` when
set (it then gets an organization and subscriptions of its own). ``--ref`` times a git revision's code.
The table goes to stdout, every figure to bench/results/<timestamp>-pass-cost.json.

``--delay-ms D`` makes the receiver answer each delivery after D ms, as a receiver across the internet does: a
task then leaves its sends to the process's straggler recorder, which records them on a connection of its own,
after the stage. The whole run's figures cover that: this process's CPU, every PostgreSQL process's (those that
ended included, through the server's parent process) and the sessions PostgreSQL opened, per event, from the
first timed event until every delivery is recorded.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.in_process import app_against_receiver, write_results
from bench.procs import ROOT, children_of, cpu_seconds, cpu_seconds_if_here
from bench.progress import log

STAGES = ("record", "relay", "task")
WARM_UP_EVENTS = 50


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pass_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--events", type=int, default=1000, help="events timed, one pass each (default 1000)")
    parser.add_argument("--subs", type=int, default=3, help="subscriptions per event, as in (a) (default 3)")
    parser.add_argument("--delay-ms", type=int, default=0, help="the receiver answers after this long (default 0)")
    parser.add_argument("--ref", help="time this git revision's code (exported with git archive)")
    return parser


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return int(pid)


def backend_cpu_seconds() -> float | None:
    """The CPU seconds of this connection's PostgreSQL backend so far; None when its process is not on this
    machine (or not readable)."""
    return cpu_seconds_if_here(backend_pid())


def server_cpu_seconds() -> float | None:
    """The CPU seconds of every process of this connection's PostgreSQL server so far: its parent's, its
    children's, and those of the children that ended (which the parent collected); None when not on this machine."""
    try:
        parent = int(Path(f"/proc/{backend_pid()}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None
    return cpu_seconds(parent, ended_children=True) + sum(cpu_seconds(child) for child in children_of(parent))


def sessions_opened() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        (sessions,) = cursor.fetchone()
    return int(sessions)


def measure(args: argparse.Namespace, receiver_url: str) -> dict[str, Any]:
    from django.conf import settings

    from bench.sendpath import make_events, make_tenant
    from deliveries.dispatch import send_due_deliveries
    from deliveries.relay import relay_pending

    tenant = make_tenant(f"{receiver_url}/after/{args.delay_ms}" if args.delay_ms else receiver_url, args.subs)
    python = dict.fromkeys(STAGES, 0.0)
    postgres = dict.fromkeys(STAGES, 0.0)
    on_this_machine = backend_cpu_seconds() is not None
    errors = 0

    def stage(name: str, work: Callable[[], object], *, timed: bool) -> None:
        before = backend_cpu_seconds() if timed and on_this_machine else None
        started = time.process_time()
        work()
        if timed:
            python[name] += time.process_time() - started
            if before is not None:
                postgres[name] += (backend_cpu_seconds() or before) - before

    def one_event(*, timed: bool) -> None:
        batches: list[Any] = []

        def task() -> None:
            nonlocal errors
            for batch in batches:
                run = send_due_deliveries(batch_size=settings.ESL_DELIVERY_BATCH_SIZE, max_seconds=30, handed=batch)
                errors += len(batch.ids) - run.handled

        stage("record", lambda: make_events(tenant.organization_id, 1), timed=timed)
        stage("relay", lambda: relay_pending(batch_size=settings.ESL_RELAY_BATCH_SIZE, hand_to=batches.extend),
              timed=timed)  # fmt: skip
        stage("task", task, timed=timed)

    log(f"warming up: {WARM_UP_EVENTS} events")
    for _ in range(WARM_UP_EVENTS):
        one_event(timed=False)
    wait_until_recorded(tenant.organization_id, WARM_UP_EVENTS * args.subs)
    log(f"timing {args.events} events x {args.subs} subscriptions")
    whole = (time.process_time(), server_cpu_seconds(), sessions_opened(), time.perf_counter())
    for _ in range(args.events):
        one_event(timed=True)
    wait_until_recorded(tenant.organization_id, (WARM_UP_EVENTS + args.events) * args.subs)
    cpu, server_cpu, sessions, wall = whole
    after_server = server_cpu_seconds()
    return {
        "delay_ms": args.delay_ms,
        "whole_run": {
            "seconds": time.perf_counter() - wall,
            "python_ms_per_event": 1000 * (time.process_time() - cpu) / args.events,
            "postgres_ms_per_event": None
            if after_server is None or server_cpu is None
            else 1000 * (after_server - server_cpu) / args.events,
            "sessions_per_event": (sessions_opened() - sessions) / args.events,
        },
        "events": args.events,
        "subscriptions": args.subs,
        "deliveries_expected": (WARM_UP_EVENTS + args.events) * args.subs,
        "deliveries_succeeded": delivered_deliveries(tenant.organization_id),
        "errors": errors,
        "python_ms_per_event": {name: 1000 * seconds / args.events for name, seconds in python.items()},
        "postgres_ms_per_event": {name: 1000 * seconds / args.events for name, seconds in postgres.items()}
        if on_this_machine
        else None,
    }


def wait_until_recorded(organization_id: Any, deliveries: int, *, timeout: float = 60.0) -> None:
    """Until ``deliveries`` of the organization are recorded (stragglers are recorded after their task)."""
    deadline = time.monotonic() + timeout
    while recorded_deliveries(organization_id) < deliveries and time.monotonic() < deadline:
        time.sleep(0.02)


def recorded_deliveries(organization_id: Any) -> int:
    from deliveries.models import Delivery, DeliveryStatus

    return Delivery.objects.filter(organization_id=organization_id).exclude(status=DeliveryStatus.PENDING).count()


def delivered_deliveries(organization_id: Any) -> int:
    from deliveries.models import Delivery, DeliveryStatus

    return Delivery.objects.filter(organization_id=organization_id, status=DeliveryStatus.SUCCEEDED).count()


def report(result: dict[str, Any]) -> None:
    python, postgres = result["python_ms_per_event"], result["postgres_ms_per_event"]
    subs = result["subscriptions"]
    print(f"\nCPU ms per event ({subs} deliveries each), {result['events']} events, one relay pass and one task each")
    print(f"  {'stage':<8}  {'this process':>12}  {'PostgreSQL':>10}")
    for name in STAGES:
        pg = "n/a" if postgres is None else f"{postgres[name]:.3f}"
        print(f"  {name:<8}  {python[name]:>12.3f}  {pg:>10}")
    total_python = sum(python.values())
    total_pg = None if postgres is None else sum(postgres.values())
    print(f"  {'total':<8}  {total_python:>12.3f}  {'n/a' if total_pg is None else f'{total_pg:.3f}':>10}")
    both = "n/a" if total_pg is None else f"{(total_python + total_pg) / subs:.3f}"
    print(f"per delivery, both: {both} ms; deliveries succeeded {result['deliveries_succeeded']} of"
          f" {result['deliveries_expected']} (warm-up included), errors {result['errors']}")  # fmt: skip
    whole = result["whole_run"]
    pg = "n/a" if whole["postgres_ms_per_event"] is None else f"{whole['postgres_ms_per_event']:.3f}"
    print(f"whole run, receiver answering after {result['delay_ms']} ms ({whole['seconds']:.1f} s, stragglers "
          f"recorded): this process {whole['python_ms_per_event']:.3f} ms, every PostgreSQL process {pg} ms, "
          f"{whole['sessions_per_event']:.2f} sessions opened, per event")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.events < 1 or args.subs < 1:
        log("--events and --subs must be positive")
        return 2
    started_at = datetime.now(UTC)
    with app_against_receiver("sapien-pass-cost-", ref=args.ref, name="passcost") as (receiver_url, kind):
        result = measure(args, receiver_url)
        result |= {"code": f"git {args.ref}" if args.ref else "working tree", "database": kind,
                   "started_at": started_at.isoformat()}  # fmt: skip
    path = write_results(result, started_at=started_at, name="pass-cost")
    report(result)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0 if result["errors"] == 0 and result["deliveries_succeeded"] == result["deliveries_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
