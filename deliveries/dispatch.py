"""Sending due deliveries in batches: claim, send concurrently, record in bulk.

A batch is claimed in one short transaction, sent with no transaction or lock
held, and its outcomes are written in one transaction guarded by the claim
token. A worker keeps claiming as sends finish, so a slow receiver delays only
its own deliveries. Many workers may run this at once; ``SKIP LOCKED`` keeps
them apart.
"""

import functools
import logging
import math
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from deliveries import retry
from deliveries.blobs import body_to_send
from deliveries.models import DeliveryStatus
from deliveries.per_process import PerProcess
from deliveries.signing import sapien_signature, standard_webhooks_signature
from deliveries.transport import DeliveryRequest, DeliveryResult, post
from sapien import __version__
from sapien.core.tiers import limits_for
from sapien.events.models import Event
from subscriptions.models import Subscription
from subscriptions.services import subscription_disable, subscription_health_record
from subscriptions.url_safety import UnsafeCallbackURL, check_callback_url

logger = logging.getLogger(__name__)

# How often a worker records finished sends and claims the room they free while others are still in flight.
RECORD_SLICE_SECONDS = 0.05
# How long a task waits for sends still in flight once it stopped claiming, before leaving them to the
# process's straggler recorder and returning.
STRAGGLER_SECONDS = 0.1

# A delivery a worker may claim now: pending, due, and not under a live claim.
CLAIMABLE = "status = 'pending' AND next_attempt_at <= now() AND (claimed_until IS NULL OR claimed_until < now())"

CLAIM_SQL = f"""
WITH due AS (
    SELECT id FROM deliveries_delivery
    WHERE {CLAIMABLE}
    ORDER BY next_attempt_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries_delivery d
    SET claim_token = %(token)s, claimed_until = now() + make_interval(secs => %(lease)s),
        attempt_count = d.attempt_count + 1, updated_at = now()
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.attempt_count, d.event_id, d.subscription_id
)
SELECT c.id, c.attempt_count,
       e.id, e.type, e.body, e.organization_id, e.created_at, e.recipient_id,
       s.id, s.callback_url, s.secret, s.active, o.tier, s.previous_secret, s.previous_secret_expires_at
FROM claimed c
JOIN events_event e ON e.id = c.event_id
JOIN subscriptions_subscription s ON s.id = c.subscription_id
JOIN core_organization o ON o.id = s.organization_id
"""

RECORD_SQL = """
WITH attempts AS (  -- every attempt is a fact, kept even when the claim went stale
    INSERT INTO deliveries_deliveryattempt (
        delivery_id, number, started_at, duration_ms, status_code, succeeded, error, response_excerpt
    )
    SELECT * FROM unnest(%(a_ids)s::uuid[], %(a_numbers)s::int[], %(a_started)s::timestamptz[],
                         %(a_durations)s::int[], %(a_codes)s::int[], %(a_succeeded)s::boolean[],
                         %(a_errors)s::text[], %(a_excerpts)s::text[])
)
UPDATE deliveries_delivery d
SET status = v.status, next_attempt_at = v.next_attempt_at, last_status_code = v.status_code,
    last_error = v.error, completed_at = v.completed_at,
    claim_token = NULL, claimed_until = NULL, updated_at = now()
FROM unnest(%(ids)s::uuid[], %(statuses)s::text[], %(next)s::timestamptz[], %(codes)s::int[],
            %(errors)s::text[], %(completed)s::timestamptz[])
     AS v(id, status, next_attempt_at, status_code, error, completed_at)
WHERE d.id = v.id AND d.claim_token = %(token)s
RETURNING d.id
"""


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    attempt: int
    event: Event
    subscription: Subscription
    tier: str

    @property
    def addressed(self) -> bool:
        return self.event.recipient_id == self.subscription.id


@dataclass(frozen=True)
class Outcome:
    delivery: ClaimedDelivery
    result: DeliveryResult | None  # None: nothing was sent
    status: str
    next_attempt_at: datetime | None
    error: str


def claim_lease_seconds(batch_size: int) -> float:
    rounds = math.ceil(batch_size / max(settings.ESL_DELIVERY_CONCURRENCY, 1))
    return rounds * (settings.ESL_CONNECT_TIMEOUT + settings.ESL_READ_TIMEOUT) + settings.ESL_CLAIM_LEASE_MARGIN_SECONDS


def claim_due(*, batch_size: int, token: uuid.UUID) -> list[ClaimedDelivery]:
    """Claims up to ``batch_size`` due deliveries in one statement (its own short transaction)."""
    with connection.cursor() as cursor:  # one statement: atomic without BEGIN and COMMIT round trips
        cursor.execute(CLAIM_SQL, {"batch": batch_size, "token": token, "lease": claim_lease_seconds(batch_size)})
        rows = cursor.fetchall()
    claimed = []
    for (delivery_id, attempt, event_id, event_type, body, organization_id, created_at, recipient_id,
         subscription_id, callback_url, secret, active, tier, previous_secret, previous_expires) in rows:  # fmt: skip
        event = Event(
            id=event_id, type=event_type, body=body, organization_id=organization_id,
            created_at=created_at, recipient_id=recipient_id,
        )  # fmt: skip
        subscription = Subscription(
            id=subscription_id, organization_id=organization_id, callback_url=callback_url, secret=secret,
            active=active, previous_secret=previous_secret, previous_secret_expires_at=previous_expires,
        )  # fmt: skip
        claimed.append(
            ClaimedDelivery(id=delivery_id, attempt=attempt, event=event, subscription=subscription, tier=tier)
        )
    return claimed


def build_request(delivery: ClaimedDelivery, body: bytes) -> DeliveryRequest:
    event, subscription = delivery.event, delivery.subscription
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Sapien-ESL/{__version__}",
        "X-Sapien-Signature": sapien_signature(
            secret=subscription.secret, body=body, algorithm=settings.ESL_SIGNATURE_ALGORITHM
        ),
        "X-Sapien-Event": event.type,
        "X-Sapien-Delivery": str(delivery.id),
        "X-Sapien-Attempt": str(delivery.attempt),
        "webhook-id": str(event.id),
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_signature(
            secrets=subscription.signing_secrets(timezone.now()),
            message_id=str(event.id),
            timestamp=timestamp,
            body=body,
        ),
    }
    return DeliveryRequest(url=subscription.callback_url, body=body, headers=headers)


def decide(delivery: ClaimedDelivery, result: DeliveryResult, *, now: datetime) -> Outcome:
    """What an attempt's result means for its delivery: done, retry later, or failed for good."""
    if retry.is_success(result.status_code):
        return Outcome(delivery, result, DeliveryStatus.SUCCEEDED, None, "")
    error = result.error or f"HTTP {result.status_code}"
    if retry.deactivates_subscription(result.status_code):
        return Outcome(delivery, result, DeliveryStatus.FAILED, None, "410 Gone: subscription deactivated")
    if delivery.attempt > limits_for(delivery.tier).retry_budget:
        return Outcome(delivery, result, DeliveryStatus.FAILED, None, error)
    retry_after = None
    if result.status_code in (429, 503):
        retry_after = retry.parse_retry_after(result.retry_after, now=now)
    next_at = retry.next_attempt_time(delivery.attempt, now=now, retry_after=retry_after)
    return Outcome(delivery, result, DeliveryStatus.PENDING, next_at, error)


def _refusal(delivery: ClaimedDelivery, reason: str) -> Outcome:
    return Outcome(delivery, None, DeliveryStatus.FAILED, None, reason)


def prepare_batch(batch: list[ClaimedDelivery]) -> tuple[list[Outcome], list[tuple[ClaimedDelivery, DeliveryRequest]]]:
    """Refuses what must not be sent (inactive subscription, unsafe URL); signs the rest, one body per event."""
    bodies: dict[uuid.UUID, bytes] = {}
    url_verdicts: dict[str, str] = {}
    to_send: list[tuple[ClaimedDelivery, DeliveryRequest]] = []
    refusals: list[Outcome] = []
    for delivery in batch:
        if not delivery.subscription.active and not delivery.addressed:
            refusals.append(_refusal(delivery, "subscription is inactive"))
            continue
        url = delivery.subscription.callback_url
        if url not in url_verdicts:
            try:
                check_callback_url(url)
                url_verdicts[url] = ""
            except UnsafeCallbackURL as exc:
                url_verdicts[url] = str(exc)
        if url_verdicts[url]:
            refusals.append(_refusal(delivery, f"refused: {url_verdicts[url]}"))
            continue
        if delivery.event.id not in bodies:
            bodies[delivery.event.id] = body_to_send(delivery.event)
        to_send.append((delivery, build_request(delivery, bodies[delivery.event.id])))
    return refusals, to_send


# The process's sending threads: ``ESL_DELIVERY_CONCURRENCY`` requests at once.
_senders = PerProcess(
    lambda: ThreadPoolExecutor(max_workers=settings.ESL_DELIVERY_CONCURRENCY, thread_name_prefix="deliver")
)


def send_batch(batch: list[ClaimedDelivery]) -> list[Outcome]:
    """Sends every claimed delivery concurrently and waits for all. Must not run inside a transaction."""
    outcomes, to_send = prepare_batch(batch)
    results = [future.result() for future in [submit(request) for _, request in to_send]]
    now = timezone.now()
    outcomes.extend(decide(delivery, result, now=now) for (delivery, _), result in zip(to_send, results, strict=True))
    return outcomes


def record_outcomes(outcomes: Iterable[Outcome], *, token: uuid.UUID) -> None:
    """Writes attempts and delivery states in one transaction; a stale claim's states are dropped."""
    outcomes = list(outcomes)
    if not outcomes:
        return
    now = timezone.now()
    sent = [(outcome, outcome.result) for outcome in outcomes if outcome.result is not None]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                RECORD_SQL,
                {
                    "token": token,
                    "a_ids": [outcome.delivery.id for outcome, _ in sent],
                    "a_numbers": [outcome.delivery.attempt for outcome, _ in sent],
                    "a_started": [result.started_at for _, result in sent],
                    "a_durations": [result.duration_ms for _, result in sent],
                    "a_codes": [result.status_code for _, result in sent],
                    "a_succeeded": [outcome.status == DeliveryStatus.SUCCEEDED for outcome, _ in sent],
                    "a_errors": [result.error for _, result in sent],
                    "a_excerpts": [result.response_excerpt for _, result in sent],
                    "ids": [outcome.delivery.id for outcome in outcomes],
                    "statuses": [str(outcome.status) for outcome in outcomes],
                    "next": [outcome.next_attempt_at for outcome in outcomes],
                    "codes": [outcome.result.status_code if outcome.result else None for outcome in outcomes],
                    "errors": [outcome.error for outcome in outcomes],
                    "completed": [None if outcome.status == DeliveryStatus.PENDING else now for outcome in outcomes],
                },
            )
            applied = {row[0] for row in cursor.fetchall()}
        recorded = [outcome for outcome in outcomes if outcome.delivery.id in applied]
        log_outcomes(recorded)
        gone = {
            outcome.delivery.subscription.id
            for outcome in recorded
            if outcome.result is not None and retry.deactivates_subscription(outcome.result.status_code)
        }
        for subscription in Subscription.objects.select_for_update().filter(id__in=gone, active=True):
            subscription_disable(subscription=subscription, reason="The receiver answered 410 Gone.", now=now)
        succeeded = {o.delivery.subscription.id for o in recorded if o.status == DeliveryStatus.SUCCEEDED}
        failed = Counter(
            o.delivery.subscription.id for o in recorded if o.status == DeliveryStatus.FAILED and o.result is not None
        )
        subscription_health_record(succeeded=succeeded, failed=failed, now=now)


def log_outcomes(outcomes: list[Outcome]) -> None:
    """One line per failed attempt (never a secret or a body) and one per batch."""
    for outcome in outcomes:
        if outcome.status == DeliveryStatus.SUCCEEDED:
            continue
        logger.info(
            "Delivery attempt failed",
            extra={
                "delivery_id": str(outcome.delivery.id),
                "event_id": str(outcome.delivery.event.id),
                "subscription_id": str(outcome.delivery.subscription.id),
                "attempt": outcome.delivery.attempt,
                "status_code": outcome.result.status_code if outcome.result else None,
                "error": outcome.error,
                "final": outcome.status == DeliveryStatus.FAILED,
            },
        )
    succeeded = sum(1 for outcome in outcomes if outcome.status == DeliveryStatus.SUCCEEDED)
    logger.debug("Recorded %s outcomes, %s succeeded", len(outcomes), succeeded)


def record_outcomes_persistently(outcomes: list[Outcome], *, token: uuid.UUID, tries: int = 8) -> None:
    """Records what was sent even across a database restart: the attempts happened, and recording them
    now spares a second send once the claim lapses. Gives up (the lease then covers it) after ~15 s."""
    if not outcomes:
        return
    for attempt in range(1, tries + 1):
        try:
            record_outcomes(outcomes, token=token)
            return
        except (OperationalError, InterfaceError):
            if attempt == tries:
                raise
            logger.warning("Could not record %s outcomes (database unavailable); retrying.", len(outcomes))
            connection.close()  # the next try opens a fresh connection
            time.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))


InFlight = dict[Future[DeliveryResult], tuple[ClaimedDelivery, uuid.UUID]]  # a send, its delivery and claim
Straggler = tuple[Future[DeliveryResult], ClaimedDelivery, uuid.UUID]


@dataclass(frozen=True)
class DeliveryRun:
    handled: int  # deliveries claimed
    time_up: bool  # claiming stopped with work perhaps left (time ran out, or every sending thread was busy)


def deliver_due(*, batch_size: int, max_seconds: float) -> DeliveryRun:
    """Sends what is due, up to ``batch_size`` deliveries in flight, until a claim comes back short.

    Outcomes are recorded every ``RECORD_SLICE_SECONDS``; while claims come back full, the room finished
    sends free is claimed again at once. Once claiming stops, sends still in flight after
    ``STRAGGLER_SECONDS`` are left to the process's straggler recorder: a receiver that answers slowly
    holds neither the deliveries claimed with it nor the worker, which is free for the next wake-up.
    """
    deadline = time.monotonic() + max_seconds
    in_flight: InFlight = {}
    handled = 0
    time_up = False
    stopped_at: float | None = None  # when claiming stopped
    while True:
        if stopped_at is None:
            room = batch_size - senders_busy()
            if room <= 0 or time.monotonic() >= deadline:
                time_up = True
                stopped_at = time.monotonic()
            else:
                token = uuid.uuid4()
                batch = claim_due(batch_size=room, token=token)
                refusals, to_send = prepare_batch(batch)
                record_outcomes_persistently(refusals, token=token)
                for delivery, request in to_send:
                    in_flight[submit(request)] = (delivery, token)
                handled += len(batch)
                if len(batch) < room:  # nothing more is due now; what falls due later brings its own wake-up
                    stopped_at = time.monotonic()
        if not in_flight:
            if stopped_at is None:
                continue
            break
        if stopped_at is not None and time.monotonic() - stopped_at > STRAGGLER_SECONDS:
            break
        done, _ = wait(in_flight, timeout=RECORD_SLICE_SECONDS, return_when=ALL_COMPLETED)
        record_finished({future: in_flight.pop(future) for future in done})
    if in_flight:
        adopt_stragglers(in_flight)
    return DeliveryRun(handled=handled, time_up=time_up)


def record_finished(finished: InFlight) -> None:
    """Decides and records finished sends, one transaction per claim."""
    now = timezone.now()
    by_claim: dict[uuid.UUID, list[Outcome]] = {}
    for future, (delivery, token) in finished.items():
        by_claim.setdefault(token, []).append(decide(delivery, future.result(), now=now))
    for token, outcomes in by_claim.items():
        record_outcomes_persistently(outcomes, token=token)


_busy_lock = threading.Lock()
_busy = 0  # sends submitted in this process and not finished yet, whichever task submitted them


def submit(request: DeliveryRequest) -> Future[DeliveryResult]:
    global _busy
    with _busy_lock:
        _busy += 1
    future = _senders.get().submit(post, request)
    future.add_done_callback(_send_finished)
    return future


def _send_finished(future: Future[DeliveryResult]) -> None:
    global _busy
    with _busy_lock:
        _busy -= 1


def senders_busy() -> int:
    return _busy


def _start_straggler_recorder() -> queue.SimpleQueue[Straggler]:
    finished: queue.SimpleQueue[Straggler] = queue.SimpleQueue()
    threading.Thread(target=_record_stragglers, args=(finished,), name="stragglers", daemon=True).start()
    return finished


_stragglers = PerProcess(_start_straggler_recorder)


def adopt_stragglers(in_flight: InFlight) -> None:
    """Hands sends still in flight to a thread of their own that records each when it finishes."""
    finished = _stragglers.get()
    for future, (delivery, token) in in_flight.items():
        future.add_done_callback(functools.partial(_queue_straggler, finished, delivery, token))


def _queue_straggler(
    finished: queue.SimpleQueue[Straggler],
    delivery: ClaimedDelivery,
    token: uuid.UUID,
    future: Future[DeliveryResult],
) -> None:
    finished.put((future, delivery, token))


def _record_stragglers(finished: queue.SimpleQueue[Straggler]) -> None:
    while True:
        first = finished.get()
        time.sleep(RECORD_SLICE_SECONDS)  # those finishing together are recorded together
        batch = [first]
        while not finished.empty():
            batch.append(finished.get())
        try:
            record_finished({future: (delivery, token) for future, delivery, token in batch})
        except Exception:
            logger.exception("Could not record %s straggling deliveries; they will be retried.", len(batch))
        finally:
            connection.close()  # this thread's own connection: do not keep it idle between stragglers


def has_due_deliveries() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM deliveries_delivery WHERE {CLAIMABLE})")
        row = cursor.fetchone()
    return bool(row and row[0])
