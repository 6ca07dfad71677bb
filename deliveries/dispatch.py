"""Sending due deliveries in batches: claim, send concurrently, record in bulk.

A batch is claimed in one short transaction, sent with no transaction or lock
held, and its outcomes are written in one transaction guarded by the claim
token. A worker keeps claiming as sends finish, so a slow receiver delays only
its own deliveries. Many workers may run this at once; ``SKIP LOCKED`` keeps
them apart.
"""

import time
import uuid
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, wait
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from deliveries.claims import ClaimedBatch, claim_due, handed_deliveries, record_outcomes_persistently
from deliveries.handoff import HandedBatch, claims_release
from deliveries.limits import RATE_WINDOW_SECONDS
from deliveries.models import DeliveryStatus
from deliveries.outbound import prepare_batch
from deliveries.per_process import PerProcess
from deliveries.retry import Outcome, decide
from deliveries.senders import InFlight, SenderPool
from deliveries.wakeups import wake_delivery_workers, wake_delivery_workers_later
from sapien.core import tracing
from sapien.core.transactions import assert_no_transaction

# How often a worker records finished sends and claims the room they free while others are still in flight.
RECORD_SLICE_SECONDS = 0.05
# How long after the room of deliveries held back by their limits comes back a worker is woken to claim them: the
# record's latency (the database counts from its own clock, a little later), so that it does not come too early
# and find no room.
WAKE_MARGIN_SECONDS = 0.05
# How long a task waits at most for sends still in flight once it stopped claiming, before leaving them to the
# process's straggler recorder and returning: one record slice. The task holds its worker process meanwhile, so
# every task with a slow receiver's send in it costs that long: at 0.1 s, one receiver answering after 2 s among
# a hand-over's subscriptions kept both processes of a worker busy at 18.8 events/s, and the others' deliveries
# queued behind them (bench (f): healthy first attempts' p99 3.0 s; one slice: 59 ms).
STRAGGLER_SECONDS = RECORD_SLICE_SECONDS
# Once its sends have begun to finish, how long a task waits for the next one before leaving the rest to the
# straggler recorder: sends to receivers answering alike finish within this of each other, and a receiver that
# answers later does not hold the process the rest of STRAGGLER_SECONDS. A process's broker may already have
# given it its next task (Celery acknowledges a task as it starts), which would wait that long.
STRAGGLER_QUIET_SECONDS = 0.01


def record_finished(finished: InFlight) -> None:
    """Decides and records finished sends, one transaction per claim."""
    now = timezone.now()
    by_claim: dict[uuid.UUID, list[Outcome]] = {}
    for future, (delivery, token) in finished.items():
        by_claim.setdefault(token, []).append(decide(delivery, future.result(), now=now))
    for token, outcomes in by_claim.items():
        record_outcomes_persistently(outcomes, token=token)
    if any(outcome.delivery.subscription.ordered and outcome.status != DeliveryStatus.PENDING
           for outcomes in by_claim.values() for outcome in outcomes):  # fmt: skip
        wake_delivery_workers(1)  # an ordered key's next delivery is due now, and nothing else would wake for it
    answers = [
        future.result().started_at + timedelta(milliseconds=future.result().duration_ms + 1)
        for future, (delivery, _) in finished.items()
        if delivery.subscription.rate_limited
    ]
    if answers:  # their room comes back a second after their answers (deliveries/limits.py)
        room_in = RATE_WINDOW_SECONDS - (now - max(answers)).total_seconds()
        wake_delivery_workers_later(max(room_in, 0.0) + WAKE_MARGIN_SECONDS)


def record_stragglers(finished: InFlight) -> None:
    """The straggler recorder's call, on that thread's own connection: kept between records, since a connection
    opened for each cost PostgreSQL more than the records (``python -m bench.pass_cost --delay-ms 100``), and
    checked before each as a task's is (``CONN_MAX_AGE``, an error, a database restart)."""
    close_old_connections()
    record_finished(finished)


def close_recorder_connection() -> None:
    """The straggler recorder's connection, closed once stragglers stop coming (``RECORDER_IDLE_SECONDS``).
    A function, so that ``connection`` is looked up on the recorder's thread: ``connection.close`` taken where the
    pool is made would be that thread's connection."""
    connection.close()


# How long the straggler recorder keeps its connection with nothing to record: a worker whose receivers answer
# after more than STRAGGLER_SECONDS records on it all the time, one whose receivers are quick seldom or never.
RECORDER_IDLE_SECONDS = 60.0

# The process's ``ESL_DELIVERY_CONCURRENCY`` sending threads and its straggler recorder.
senders = PerProcess(
    lambda: SenderPool(
        concurrency=settings.ESL_DELIVERY_CONCURRENCY, record=record_stragglers, gather_seconds=RECORD_SLICE_SECONDS,
        idle=close_recorder_connection, idle_seconds=RECORDER_IDLE_SECONDS,
    )
)  # fmt: skip


def take_finishing(in_flight: InFlight, *, since: float) -> InFlight:
    """Takes out of ``in_flight`` the sends that finish while they keep finishing: waits for the first until
    ``STRAGGLER_SECONDS`` after ``since``, then for the rest in spans of ``STRAGGLER_QUIET_SECONDS`` (waking once
    per span, not per send), until a span sees none finish with each of the rest sending, none still waiting for
    a sending thread. What is left are the stragglers."""
    finished: InFlight = {}
    while in_flight:
        left = since + STRAGGLER_SECONDS - time.monotonic()
        if left <= 0:
            break
        if finished:
            done, _ = wait(in_flight, timeout=min(left, STRAGGLER_QUIET_SECONDS), return_when=ALL_COMPLETED)
        else:
            done, _ = wait(in_flight, timeout=left, return_when=FIRST_COMPLETED)
        finished.update((future, in_flight.pop(future)) for future in done)
        if not done and all(future.running() for future in in_flight):
            break
    return finished


@dataclass(frozen=True)
class DeliveryRun:
    handled: int  # deliveries claimed
    time_up: bool  # claiming stopped with work perhaps left (time ran out, or every sending thread was busy)


def send_due_deliveries(*, batch_size: int, max_seconds: float, handed: HandedBatch | None = None) -> DeliveryRun:
    """Sends what is due, up to ``batch_size`` deliveries in flight, until a claim comes back short; or, given a
    batch the relay ``handed`` over born claimed, sends that batch and claims nothing. A handed batch that finds
    every sending thread taken (by slow receivers) is given back, due at once, and another worker woken for it.

    Outcomes are recorded every ``RECORD_SLICE_SECONDS``; while claims come back full, the room finished
    sends free is claimed again at once. Once claiming stops, sends still in flight after
    ``STRAGGLER_SECONDS``, or ``STRAGGLER_QUIET_SECONDS`` after the last to finish, are left to the process's
    straggler recorder (``take_finishing``): a receiver that answers slowly
    holds neither the deliveries claimed with it nor the worker, which is free for the next wake-up.
    Must not run inside a transaction: each claim and record commits on its own, and sends hold no lock.
    """
    assert_no_transaction("send_due_deliveries")
    pool = senders.get()
    deadline = time.monotonic() + max_seconds
    in_flight: InFlight = {}
    handled = 0
    time_up = False
    stopped_at: float | None = None  # when claiming stopped
    wake_at: float | None = None  # when the first of the deliveries claims put back for their limits has room
    while True:
        if stopped_at is None:
            room = batch_size - pool.busy
            if handed is not None and room <= 0:  # slow receivers hold every thread: let a freer worker take it
                claims_release([handed])
                wake_delivery_workers(1)
                return DeliveryRun(handled=0, time_up=True)
            if room <= 0 or time.monotonic() >= deadline:
                time_up = True
                stopped_at = time.monotonic()
            else:
                with tracing.span("sapien.delivery.claim", {"sapien.claim.handed": handed is not None}) as claim:
                    if handed is not None:
                        token = handed.token
                        batch = handed_deliveries(token=token, ids=handed.ids, since=handed.since, until=handed.until)
                    else:
                        token = uuid.uuid4()
                        batch = claim_due(batch_size=room, token=token)
                    tracing.add_links(claim, (delivery.event.traceparent for delivery in batch))
                refusals, to_send = prepare_batch(batch)
                record_outcomes_persistently(refusals, token=token)
                for delivery, request in to_send:
                    in_flight[pool.submit(request, claim=claim)] = (delivery, token)
                handled += len(batch)
                put_back = batch.put_back if isinstance(batch, ClaimedBatch) else 0  # held back by their limits
                # At their in-flight caps: this worker's own sends give room back as they are recorded.
                capped = isinstance(batch, ClaimedBatch) and batch.capped and bool(in_flight)
                if isinstance(batch, ClaimedBatch) and batch.wake_in is not None:
                    at = time.monotonic() + batch.wake_in
                    wake_at = at if wake_at is None else min(wake_at, at)
                if handed is not None or (len(batch) + put_back < room and not capped):
                    stopped_at = time.monotonic()  # nothing more is due now; what falls due later wakes a worker
        if not in_flight:
            if stopped_at is None:
                continue
            break
        if stopped_at is not None:
            record_finished(take_finishing(in_flight, since=stopped_at))
            break
        done, _ = wait(in_flight, timeout=RECORD_SLICE_SECONDS, return_when=ALL_COMPLETED)
        record_finished({future: in_flight.pop(future) for future in done})
    if in_flight:
        pool.adopt(in_flight)
    if wake_at is not None:  # claim again when their room comes back
        wake_delivery_workers_later(max(wake_at - time.monotonic(), 0.0) + WAKE_MARGIN_SECONDS)
    return DeliveryRun(handled=handled, time_up=time_up)
