"""The worker's send path per delivery, timed stage by stage in one process: ``python -m bench.sendpath``.

    .venv/bin/python -m bench.sendpath [--deliveries 2000] [--subs 3] [--repeats 3] [--ref HEAD]

Django runs in this process against a real PostgreSQL (the embedded one, in a temporary directory, or
``DATABASE_URL`` when set: it then gets an organization, subscriptions, events and deliveries of its own)
and posts to the bench's receiver (``bench/receiver.py``) on loopback. What a worker does between its claim
and its record is timed per stage, with only public functions of ``deliveries``:

    prepare   outbound.prepare_batch: refusals, bodies, headers, both signatures
    send      transport.post, one after another over the process's keep-alive session
    decide    retry.decide, one ``now`` per batch (as the worker does)
    record    claims.record_outcomes on deliveries claimed for real (claim_due), client side; the part spent
              outside database calls (parameters, logging, subscription health) is its own row
    pool      the same sends through senders.SenderPool at ESL_DELIVERY_CONCURRENCY, a batch submitted at once and
              waited for in record slices, as the worker does: its hand-off to threads (not in the total)
    bare      http.client posting the same bodies and headers over one keep-alive connection: the floor

The send stages run on deliveries claimed in memory (``ClaimedDelivery`` built from real events and
subscriptions, never claimed in the database), so that nothing but the send path is timed. CPU is
``time.process_time`` (every thread of this process; the receiver and PostgreSQL are other processes) and
``time.thread_time`` (the timing thread); wall is ``time.perf_counter``. Each round times every stage over
``--deliveries`` deliveries in batches of ``ESL_DELIVERY_BATCH_SIZE``; the figures are medians over rounds.
Progress goes to stderr, the table to stdout, every figure to bench/results/<timestamp>-sendpath.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bench.in_process import app_against_receiver, write_results
from bench.procs import HOST, ROOT
from bench.progress import log
from bench.results import SendPath, StageTime
from bench.stats import median, ratio

NOTES = "x" * 600  # the bench's (a) bodies: a ~1 KB envelope

# Stage keys, in the order printed; ``TOTAL`` adds those the worker runs for every delivery.
STAGES = ("prepare", "send", "decide", "record", "record_outside_db")
TOTAL = ("prepare", "send", "decide", "record")


class Clock:
    """CPU (this process; this thread) and wall seconds, summed over the spans timed with it."""

    def __init__(self) -> None:
        self.cpu = self.thread = self.wall = 0.0

    @contextlib.contextmanager
    def span(self) -> Iterator[None]:
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu += time.process_time() - cpu
            self.thread += time.thread_time() - thread
            self.wall += time.perf_counter() - wall

    def minus(self, other: Clock) -> Clock:
        out = Clock()
        out.cpu, out.thread, out.wall = self.cpu - other.cpu, self.thread - other.thread, self.wall - other.wall
        return out

    def per(self, items: int) -> StageTime:
        scale = 1e6 / max(items, 1)
        return StageTime(cpu_us=round(self.cpu * scale, 1), thread_cpu_us=round(self.thread * scale, 1),
                         wall_us=round(self.wall * scale, 1))  # fmt: skip


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sendpath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--deliveries", type=int, default=2000, help="deliveries per round (default 2000)")
    parser.add_argument("--subs", type=int, default=3, help="subscriptions per event, as in (a) (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; figures are medians (default 3)")
    parser.add_argument("--ref", help="time this git revision's deliveries code (exported with git archive)")
    parser.add_argument("--receiver-url", help="post to this receiver instead of starting bench/receiver.py")
    parser.add_argument("--headers", type=int, default=0, help="custom headers per subscription (default 0)")
    parser.add_argument("--no-record", action="store_true", help="skip the record stage (it writes rows)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.deliveries < 1 or args.subs < 1 or args.repeats < 1:
        log("--deliveries, --subs and --repeats must be positive")
        return 2
    started_at = datetime.now(UTC)
    running = app_against_receiver("sapien-sendpath-", ref=args.ref, name="sendpath", receiver_url=args.receiver_url)
    with running as (receiver_url, kind):
        from bench.report import sendpath_report  # here: it imports sapien, which must come from the app's root

        result = measure(args, receiver_url, code=f"git {args.ref}" if args.ref else "working tree",
                         database=kind, started_at=started_at)  # fmt: skip
    path = write_results(dataclasses.asdict(result), started_at=started_at, name="sendpath")
    sendpath_report(result)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


def measure(args: argparse.Namespace, receiver_url: str, *, code: str, database: str, started_at: datetime) -> SendPath:
    from django.conf import settings

    from deliveries.outbound import prepare_batch

    batch_size = settings.ESL_DELIVERY_BATCH_SIZE
    n = args.deliveries
    events_per_round = math.ceil(n / args.subs)
    tenant = make_tenant(receiver_url, args.subs, headers=args.headers)
    log(f"{args.repeats} rounds of {n} deliveries ({events_per_round} events x {args.subs} subscriptions), "
        f"batches of {batch_size}")  # fmt: skip
    events = make_events(tenant.organization_id, events_per_round)
    claimed = [fake_claim(event, sub, tenant.tier) for event in events for sub in tenant.subscriptions][:n]
    batches = [claimed[i : i + batch_size] for i in range(0, n, batch_size)]
    skipped: dict[str, str] = {}
    real: list[list[Any]] = []
    if args.no_record:
        skipped["record"] = "--no-record"
    else:
        try:
            real = claim_for_real(tenant.organization_id, events_per_round, args.repeats, n, batch_size)
        except Exception as exc:
            skipped["record"] = f"could not claim deliveries for real: {type(exc).__name__}: {exc}"
            log(skipped["record"])
    # Untimed: the session's connection, Django's lazy imports, the receiver's first requests.
    _, warm = prepare_batch(batches[0])
    requests_sent = [request for _, request in warm]
    post_all(requests_sent[:50])
    bare_loop(requests_sent[:50], receiver_url)
    rounds: list[dict[str, StageTime]] = []
    errors = 0
    for number in range(args.repeats):
        figures, failed = one_round(batches, real[number] if real else None, requests_sent, receiver_url, skipped)
        errors += failed
        rounds.append(figures)
        log(f"round {number + 1}: " + ", ".join(f"{key} {value.cpu_us:.0f}" for key, value in figures.items())
            + " CPU us/delivery")  # fmt: skip
    stages = {key: median_stage([r[key] for r in rounds if key in r]) for key in rounds[0]}
    total, bare = stages.get("total"), stages.get("bare")
    return SendPath(
        started_at=started_at.isoformat(), code=code, database=database, deliveries=n, subscriptions=args.subs,
        batch_size=batch_size, repeats=args.repeats, body_bytes=len(requests_sent[0].body), stages=stages,
        skipped=skipped, rounds=rounds, errors=errors,
        total_stages=[key for key in TOTAL if key not in skipped],
        cpu_ratio_to_bare=ratio(total.cpu_us, bare.cpu_us) if total and bare else None,
        wall_ratio_to_bare=ratio(total.wall_us, bare.wall_us) if total and bare else None,
        deliveries_per_s=round(1e6 / total.wall_us, 1) if total and total.wall_us else None,
        bare_per_s=round(1e6 / bare.wall_us, 1) if bare and bare.wall_us else None,
    )  # fmt: skip


def one_round(
    batches: list[list[Any]], real: list[Any] | None, bare_requests: list[Any], receiver_url: str,
    skipped: dict[str, str],
) -> tuple[dict[str, StageTime], int]:  # fmt: skip
    """Every stage over every batch, then the SenderPool and the bare loop over as many posts."""
    from django.db import connection
    from django.utils import timezone

    from deliveries.claims import record_outcomes
    from deliveries.outbound import prepare_batch
    from deliveries.retry import decide
    from deliveries.transport import post

    clocks = {key: Clock() for key in ("prepare", "send", "decide", "record")}
    in_db = Clock()

    def timed_execute(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        with in_db.span():
            return execute(sql, params, many, context)

    n = sum(len(batch) for batch in batches)
    failed = recorded = 0
    all_requests = []
    real_batches = iter(real or [])
    for batch in batches:
        with clocks["prepare"].span():
            refusals, to_send = prepare_batch(batch)
        failed += len(refusals)
        with clocks["send"].span():
            results = [post(request) for _, request in to_send]
        failed += sum(1 for result in results if result.status_code != 200)
        all_requests += [request for _, request in to_send]
        with clocks["decide"].span():
            now = timezone.now()
            outcomes = [
                decide(delivery, result, now=now) for (delivery, _), result in zip(to_send, results, strict=True)
            ]
        claimed, token = next(real_batches, (None, None))
        if claimed is not None and token is not None and "record" not in skipped:
            # The same outcomes, for deliveries claimed for real: the record's UPDATE finds their rows.
            real_outcomes = [dataclasses.replace(o, delivery=d) for o, d in zip(outcomes, claimed, strict=False)]
            try:
                with connection.execute_wrapper(timed_execute), clocks["record"].span():
                    record_outcomes(real_outcomes, token=token)
            except Exception as exc:
                skipped["record"] = f"record_outcomes raised {type(exc).__name__}: {exc}"
                log(skipped["record"])
            recorded += len(real_outcomes)
    figures = {key: clock.per(n) for key, clock in clocks.items() if key not in ("record", *skipped)}
    if "record" not in skipped:
        figures["record"] = clocks["record"].per(recorded)
        figures["record_outside_db"] = clocks["record"].minus(in_db).per(recorded)
    total = StageTime(cpu_us=0.0, thread_cpu_us=0.0, wall_us=0.0)
    for key in TOTAL:
        if key in figures:
            stage = figures[key]
            total = StageTime(cpu_us=round(total.cpu_us + stage.cpu_us, 1),
                              thread_cpu_us=round(total.thread_cpu_us + stage.thread_cpu_us, 1),
                              wall_us=round(total.wall_us + stage.wall_us, 1))  # fmt: skip
    figures["total"] = total
    pool = pool_clock(all_requests, skipped)
    if pool is not None:
        figures["pool"] = pool.per(len(all_requests))
    figures["bare"] = bare_loop(all_requests or bare_requests, receiver_url).per(len(all_requests or bare_requests))
    return figures, failed


def pool_clock(requests: list[Any], skipped: dict[str, str]) -> Clock | None:
    """The sends through a ``SenderPool`` of the worker's concurrency, a batch submitted at once and waited for in
    record slices, as the worker does (``deliveries/dispatch.py``)."""
    from concurrent.futures import ALL_COMPLETED, wait

    from django.conf import settings

    from deliveries.senders import SenderPool

    clock = Clock()
    try:
        pool = SenderPool(concurrency=settings.ESL_DELIVERY_CONCURRENCY, record=lambda finished: None,
                          gather_seconds=0.05)  # fmt: skip
    except TypeError as exc:
        skipped["pool"] = f"SenderPool(...) changed: {exc}"
        return None
    batch = settings.ESL_DELIVERY_BATCH_SIZE
    with clock.span():
        for start in range(0, len(requests), batch):
            in_flight = {pool.submit(request) for request in requests[start : start + batch]}
            while in_flight:
                _, in_flight = wait(in_flight, timeout=0.05, return_when=ALL_COMPLETED)
    return clock


def post_all(requests: list[Any]) -> None:
    from deliveries.transport import post

    for request in requests:
        post(request)


def bare_loop(requests: list[Any], receiver_url: str) -> Clock:
    """The floor: each request's body and headers posted with ``http.client`` over one keep-alive connection."""
    parts = urlsplit(receiver_url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port or 80, timeout=10)
    clock = Clock()
    with clock.span():
        for request in requests:
            target = urlsplit(request.url)
            conn.request("POST", f"{target.path}?{target.query}", body=request.body, headers=request.headers)
            response = conn.getresponse()
            response.read()
    conn.close()
    return clock


def median_stage(values: list[StageTime]) -> StageTime:
    def mid(name: str) -> float:
        return round(median([getattr(value, name) for value in values]) or 0.0, 1)

    return StageTime(cpu_us=mid("cpu_us"), thread_cpu_us=mid("thread_cpu_us"), wall_us=mid("wall_us"))


@dataclasses.dataclass(frozen=True)
class Tenant:
    organization_id: uuid.UUID
    tier: str
    subscriptions: list[Any]  # subscriptions.models.Subscription


def make_tenant(receiver_url: str, subs: int, *, headers: int = 0) -> Tenant:
    from django.db import transaction

    from sapien.core.services import organization_create
    from subscriptions.services import subscription_create

    # Custom headers (a gateway token and the like) only when asked: older revisions (--ref) take none.
    extra: dict[str, Any] = (
        {"headers": {f"X-Custom-{n}": f"value-{n}-" + "x" * 40 for n in range(headers)}} if headers else {}
    )
    with transaction.atomic():
        organization = organization_create(name=f"sendpath-{uuid.uuid4().hex[:8]}", tier="enterprise")
        subscriptions = [
            subscription_create(
                organization=organization,
                callback_url=f"{receiver_url}/sendpath?sub={index}",
                events=["person.created"],
                **extra,
            )
            for index in range(subs)
        ]
    return Tenant(organization_id=organization.id, tier=str(organization.tier), subscriptions=subscriptions)


def make_events(organization_id: uuid.UUID, count: int) -> list[Any]:
    """``count`` person.created events, recorded as the API records them (one transaction)."""
    from django.db import transaction

    from sapien.events.outbox import record_event

    events = []
    with transaction.atomic():
        for index in range(count):
            person_id = uuid.uuid4()
            data = {"id": str(person_id), "name": f"Sendpath {index}", "email": f"sendpath-{index}@example.com",
                    "notes": NOTES, "created_at": datetime.now(UTC).isoformat()}  # fmt: skip
            event = record_event(organization_id=organization_id, event_type="person.created", data=data)
            if event is None:
                raise RuntimeError("record_event recorded nothing: is ESL_ENABLED off?")
            events.append(event)
    return events


def fake_claim(event: Any, subscription: Any, tier: str) -> Any:
    """A ``ClaimedDelivery`` as a claim would return it, built in memory: no delivery row exists for it."""
    from deliveries.claims import ClaimedDelivery, ClaimedEvent, ClaimedSubscription

    return ClaimedDelivery(
        **known_fields(ClaimedDelivery, id=uuid.uuid4(), attempt=1, tier=tier,
                       event=ClaimedEvent(**known_fields(ClaimedEvent, **{
                           name: getattr(event, name, None) for name in field_names(ClaimedEvent)})),
                       subscription=ClaimedSubscription(**known_fields(ClaimedSubscription, **{
                           name: getattr(subscription, name, None) for name in field_names(ClaimedSubscription)}))),
    )  # fmt: skip


def field_names(cls: type) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def known_fields(cls: type, **values: Any) -> dict[str, Any]:
    """The values ``cls`` has fields for; a required field we have no value for fails loudly."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    missing = [name for name, field in fields.items() if name not in values and field.default is dataclasses.MISSING
               and field.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        raise TypeError(f"{cls.__name__} needs {missing}, which the send-path benchmark does not know how to fill")
    return {name: value for name, value in values.items() if name in fields}


def claim_for_real(organization_id: uuid.UUID, events_per_round: int, repeats: int, n: int,
                   batch_size: int) -> list[list[tuple[list[Any], uuid.UUID]]]:  # fmt: skip
    """Per round, batches of deliveries claimed with ``claim_due`` (untimed), for the record stage to record.

    Their events are recorded and relayed first, as the API and the relay would.
    """
    from django.conf import settings
    from django.db import connection

    from deliveries.claims import claim_due
    from deliveries.relay import relay_pending

    settings.ESL_DEFAULT_MAX_IN_FLIGHT = repeats * n  # every round is claimed up front: past a subscription's cap
    for _ in range(repeats):
        make_events(organization_id, events_per_round)
    relayed = relay_pending(batch_size=500)
    log(f"relayed {relayed.events} events into {relayed.deliveries} deliveries for the record stage")
    with connection.cursor() as cursor:  # a relay that hands its batches over born claimed: no worker here takes them
        cursor.execute(
            "UPDATE deliveries_delivery SET claim_token = NULL, claimed_until = NULL"
            " WHERE organization_id = %s AND claimed_until IS NOT NULL",
            [organization_id],
        )
    rounds = []
    for _ in range(repeats):
        batches = []
        for start in range(0, n, batch_size):
            token = uuid.uuid4()
            claimed = claim_due(batch_size=min(batch_size, n - start), token=token)
            if not claimed:
                raise RuntimeError(f"claim_due returned nothing after {start} deliveries")
            batches.append((claimed, token))
        rounds.append(batches)
    return rounds


if __name__ == "__main__":
    sys.exit(main())
