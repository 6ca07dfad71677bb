"""Receiver limits, measured: a rate-limited subscription at the receiver, and what the limits cost the claim.

    DATABASE_URL=… ESL_BROKER_URL=… .venv/bin/python -m bench.receiver_limits [--seconds 10] [--rate 20]

Two phases, against the database and broker the environment names (migrated; the bench adds its own
organization and leaves its rows behind):

- **receiver**: a relay, two worker processes and beat; one organization with a subscription limited to
  ``--rate`` per second and ``--free`` without limits, every one of them receiving every event. A backlog of
  ``--backlog`` events, then ``--events-per-second`` for ``--seconds``. Measured at the receiver (in this
  process, ``time.time()`` on arrival): the limited subscription's most requests in one second, over tumbling
  one-second windows and over any one-second window (sliding), and every subscription's rate.
- **claim**: in this process, the claim statement of ``--batch`` deliveries over ``--subs`` subscriptions, timed
  around ``execute`` and ``fetchall``, ``--repeats`` times each, interleaved: without the limits' CTEs (the
  claim as it was, through Django's cursor; and prepared), with only the default cap, and with a rate limit and a
  cap on every subscription (none binding, so each takes the same deliveries), both prepared as ``claim_due``
  prepares them (``sapien/core/prepared.py``); and, apart, with one subscription's backlog held back by its rate
  at the head of the queue (the put-back's cost). Medians, and the ratios to the claim without limits.

Prints a table and writes every figure to ``bench/results/<timestamp>-receiver-limits.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9/"  # loopback's discard port: the claim phase's deliveries are never sent


class Arrivals:
    """A loopback receiver answering 200 at once and noting each request's path and arrival time."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                with arrivals.lock:
                    arrivals.times.setdefault(self.path, []).append(now)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


def most_in_one_second(times: list[float], *, start: float) -> tuple[int, int]:
    """(most in a tumbling one-second window from ``start``, most in any one-second window)."""
    ordered = sorted(times)
    tumbling: dict[int, int] = {}
    for at in ordered:
        tumbling[int(at - start)] = tumbling.get(int(at - start), 0) + 1
    sliding, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 1.0:
            first += 1
        sliding = max(sliding, last - first + 1)
    return max(tumbling.values(), default=0), sliding


def start_stack(env: dict[str, str], log_dir: Path) -> list[subprocess.Popen[bytes]]:
    from sapien import processes

    commands = [
        processes.relay(),
        processes.worker(name="limits1@%h", log_level="WARNING"),
        processes.worker(name="limits2@%h", log_level="WARNING"),
        processes.beat(schedule=log_dir / "beat-schedule", log_level="WARNING"),
    ]
    started = []
    for index, command in enumerate(commands):
        log = (log_dir / f"process-{index}.log").open("wb")
        started.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True))
    return started


def stop_stack(started: list[subprocess.Popen[bytes]]) -> None:
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def record_events(organization_id: uuid.UUID, count: int) -> None:
    from django.db import transaction

    from sapien.events.outbox import record_event

    with transaction.atomic():
        for _ in range(count):
            record_event(organization_id=organization_id, event_type="person.created", data={"bench": "limits"})


def receiver_phase(args: argparse.Namespace) -> dict[str, Any]:
    from sapien.core.models import Organization
    from subscriptions.models import Subscription

    arrivals = Arrivals()
    organization = Organization.objects.create(name=f"limits-bench-{uuid.uuid4().hex[:6]}", tier="enterprise")
    Subscription.objects.create(
        organization=organization, callback_url=arrivals.url("/limited"), events=["*"], secret="s" * 24,
        rate_limit_per_second=args.rate,
    )  # fmt: skip
    for index in range(args.free):
        Subscription.objects.create(
            organization=organization, callback_url=arrivals.url(f"/free{index}"), events=["*"], secret="s" * 24
        )
    env = {**os.environ, "ESL_ALLOW_PRIVATE_CALLBACKS": "true", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="limits-bench-") as tmp:
        log_dir = Path(args.log_dir) if args.log_dir else Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        started = start_stack(env, log_dir)
        try:
            time.sleep(4)  # the processes' start
            began = time.time()
            record_events(organization.id, args.backlog)
            sent = args.backlog
            for second in range(args.seconds):
                record_events(organization.id, args.events_per_second)
                sent += args.events_per_second
                time.sleep(max(0.0, began + second + 1 - time.time()))
            load_ended = time.time()
            deadline = load_ended + 10
            while time.time() < deadline:  # the free subscriptions catch up; the limited one keeps its pace
                if all(len(arrivals.times.get(f"/free{i}", [])) >= sent for i in range(args.free)):
                    break
                time.sleep(0.2)
            measured_until = time.time()
        finally:
            stop_stack(started)
    finish(list(Subscription.objects.filter(organization=organization).values_list("id", flat=True)))
    limited = [at for at in arrivals.times.get("/limited", []) if at <= measured_until]
    tumbling, sliding = most_in_one_second(limited, start=began)
    free = {
        path: {
            "received": len(times),
            "per_second_during_load": round(sum(1 for at in times if at <= load_ended) / (load_ended - began), 1),
        }
        for path, times in sorted(arrivals.times.items())
        if path != "/limited"
    }
    return {
        "limited_timeline": timeline(limited, start=began, attempts=attempt_starts(organization.id, args.rate)),
        "rate_limit_per_second": args.rate,
        "events_sent": sent,
        "limited": {
            "received": len(limited),
            "most_in_a_tumbling_second": tumbling,
            "most_in_any_second": sliding,
            "per_second": round(len(limited) / (measured_until - began), 1),
            # From its first request on: without the wait for the first claim (the sweep's, within a second).
            "sustained_per_second": round(len(limited) / (measured_until - min(limited)), 1) if limited else None,
        },
        "free": free,
        "free_offered_per_second": round(sent / (load_ended - began), 1),
    }


def attempt_starts(organization_id: uuid.UUID, rate: int) -> list[float]:
    """When the workers started sending the limited subscription's attempts (their clock, ``started_at``)."""
    from deliveries.models import DeliveryAttempt

    return sorted(
        at.timestamp()
        for at in DeliveryAttempt.objects.filter(
            delivery__subscription__organization_id=organization_id,
            delivery__subscription__rate_limit_per_second=rate,
        ).values_list("started_at", flat=True)
    )


def timeline(times: list[float], *, start: float, attempts: list[float]) -> dict[str, Any]:
    """Where the limited subscription's time goes: its arrivals per tenth of a second, the idle gaps between them
    (over 0.2 s), and how long after its attempt's start each request arrived (the n-th start to the n-th
    arrival)."""
    ordered = sorted(times)
    tenths: dict[int, int] = {}
    for at in ordered:
        tenths[int((at - start) * 10)] = tenths.get(int((at - start) * 10), 0) + 1
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b - a > 0.2]
    lags = sorted(b - a for a, b in zip(attempts, ordered, strict=False))
    return {
        "per_tenth": [tenths.get(i, 0) for i in range(int((ordered[-1] - start) * 10) + 1)] if ordered else [],
        "idle_gaps": len(gaps),
        "idle_seconds": round(sum(gaps), 2),
        "start_to_arrival_ms": {
            "median": round(statistics.median(lags) * 1000, 1) if lags else None,
            "max": round(lags[-1] * 1000, 1) if lags else None,
        },
    }


def finish(subscription_ids: list[uuid.UUID]) -> None:
    """Leaves nothing of the bench's for a worker to send: its subscriptions off, their deliveries failed."""
    from django.db import connection

    from subscriptions.models import Subscription

    Subscription.objects.filter(id__in=subscription_ids).update(active=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE deliveries_delivery SET status = 'failed', claim_token = NULL, claimed_until = NULL"
            " WHERE status = 'pending' AND subscription_id = ANY(%s)",
            [subscription_ids],
        )


def claim_phase(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection

    from deliveries import claims
    from deliveries.limits import CLAIM_LIMITS_SQL, claim_limit_parameters
    from deliveries.relay import relay_pending
    from sapien.core.models import Organization
    from sapien.core.prepared import prepared_cursor
    from subscriptions.models import SendState, Subscription

    without_limits = (
        claims.CLAIM_SQL.replace(CLAIM_LIMITS_SQL + ", ", "")
        .replace("ANY(ARRAY(SELECT id FROM allowed))", "ANY(ARRAY(SELECT id FROM due))")
        .replace("(SELECT count(*) FROM put_back)", "0")
        .replace("(SELECT wake_in FROM held)", "NULL")
    )
    assert without_limits != claims.CLAIM_SQL and "sendstate" not in without_limits
    organization = Organization.objects.create(name=f"limits-claim-{uuid.uuid4().hex[:6]}", tier="enterprise")
    subscriptions = [
        Subscription.objects.create(
            organization=organization, callback_url=NOWHERE, events=["*"], secret="s" * 24
        )  # never sent: only claimed, and finished (below) before any worker runs
        for _ in range(args.subs)
    ]
    ids = [s.id for s in subscriptions]
    per_subscription = max(args.batch * 3 // args.subs, 1)
    record_events(organization.id, per_subscription)
    relay_pending(batch_size=1000)

    def reset(*, rate: int | None, cap: int | None) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE deliveries_delivery SET claim_token = NULL, claimed_until = NULL, attempt_count = 0,"
                " next_attempt_at = now() - interval '1 second' WHERE subscription_id = ANY(%s)",
                [ids],
            )
        Subscription.objects.filter(id__in=ids).update(rate_limit_per_second=rate, max_in_flight=cap)
        SendState.objects.filter(subscription_id__in=ids).update(  # kept: a claim updates its row, as in use
            flight_tokens=[],
            flight_until=[],
            flight_counts=[],
            sent_at=[],
            sent_counts=[],
            throttled_until=None,
            put_back_until=None,
        )

    def claim_once(sql: str, prepared: bool = True) -> tuple[float, int]:
        """One claim, through a prepared statement as ``claim_due`` does, or through Django's cursor as before."""
        token = uuid.uuid4()
        parameters = {"batch": args.batch, "token": token, "lease": claims.claim_lease_seconds(args.batch),
                      **claim_limit_parameters()}  # fmt: skip
        with prepared_cursor() if prepared else connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
            return time.perf_counter() - started, len(rows)

    variants = {  # the claim without limits as it was (unprepared), and the others prepared, as claim_due's
        "without_limits": (without_limits, None, None, False),
        "without_limits_prepared": (without_limits, None, None, True),
        "default_cap": (claims.CLAIM_SQL, None, None, True),
        "rate_and_cap": (claims.CLAIM_SQL, 10_000, 1_000, True),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    claimed: dict[str, set[int]] = {name: set() for name in variants}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deliveries_delivery")
    order = list(variants)
    for repeat in range(args.repeats + 2):  # the first two warm up
        random.Random(repeat).shuffle(order)  # no variant always first after a reset
        for name in order:
            sql, rate, cap, prepared = variants[name]
            reset(rate=rate, cap=cap)
            seconds, count = claim_once(sql, prepared)
            claimed[name].add(count)
            if repeat >= 2:
                timings[name].append(seconds)
    # One subscription limited to 20/s with the whole backlog due first: its excess is put back each claim.
    reset(rate=None, cap=None)
    Subscription.objects.filter(id=ids[0]).update(rate_limit_per_second=20)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE deliveries_delivery SET next_attempt_at = now() - interval '1 minute' WHERE subscription_id = %s",
            [ids[0]],
        )
    put_back_seconds, put_back_claimed = claim_once(claims.CLAIM_SQL)
    finish(ids)
    base = statistics.median(timings["without_limits"])
    return {
        "batch": args.batch,
        "subscriptions": args.subs,
        "repeats": args.repeats,
        "claimed_per_claim": {name: sorted(counts) for name, counts in claimed.items()},
        "median_ms": {name: round(statistics.median(values) * 1000, 3) for name, values in timings.items()},
        "ratio_to_without_limits": {
            name: round(statistics.median(values) / base, 3) for name, values in timings.items()
        },
        "held_back_head": {"ms": round(put_back_seconds * 1000, 3), "claimed": put_back_claimed},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--free", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=200)
    parser.add_argument("--events-per-second", type=int, default=50)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--subs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--skip-receiver", action="store_true")
    parser.add_argument("--skip-claim", action="store_true")
    parser.add_argument("--log-dir", help="keep the processes' logs there (default: a temporary directory)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
    os.environ.setdefault("ESL_ALLOW_PRIVATE_CALLBACKS", "true")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    results: dict[str, Any] = {} if args.skip_claim else {"claim": claim_phase(args)}
    if not args.skip_receiver:
        results["receiver"] = receiver_phase(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"{stamp}-receiver-limits.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if "claim" in results:
        claim = results["claim"]
        print(f"claim of {claim['batch']} over {claim['subscriptions']} subscriptions, median of {claim['repeats']}:")
        for name, ms in claim["median_ms"].items():
            print(f"  {name:<16} {ms:8.3f} ms   x{claim['ratio_to_without_limits'][name]:.3f}")
        print(f"  with a rate-limited backlog at the head: {claim['held_back_head']}")
    if "receiver" in results:
        receiver = results["receiver"]
        limited = receiver["limited"]
        print(
            f"receiver: limited to {receiver['rate_limit_per_second']}/s: most in a tumbling second "
            f"{limited['most_in_a_tumbling_second']}, in any second {limited['most_in_any_second']}, "
            f"{limited['per_second']}/s over the run ({limited['received']} received),"
            f" {limited['sustained_per_second']}/s from its first request on"
        )
        line = receiver["limited_timeline"]
        print(
            f"  limited timeline: {line['idle_gaps']} idle gaps over 0.2 s, {line['idle_seconds']} s idle;"
            f" attempt start to arrival {line['start_to_arrival_ms']} ms; per tenth {line['per_tenth']}"
        )
        print(f"  free subscriptions (offered {receiver['free_offered_per_second']}/s each): {receiver['free']}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
