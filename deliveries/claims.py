"""Claims: which deliveries are due, taking a batch of them, and recording what became of it.

A batch is claimed in one autocommitted statement (``FOR UPDATE SKIP LOCKED``, so workers never
take the same rows) and stamped with a claim token and a lease. Its outcomes are written in one
transaction guarded by that token: a claim that went stale while its sends were slow cannot
overwrite the newer outcome of the worker that took its deliveries over.
"""

import json
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from deliveries.counters import counter_parameters, outcome_counts_sql
from deliveries.health import health_counts_sql
from deliveries.limits import (
    CLAIM_AT_CAP_SQL,
    CLAIM_LIMITS_SQL,
    claim_limit_parameters,
    released_sql,
    subscriptions_throttle,
    throttles,
)
from deliveries.models import DeliveryStatus
from deliveries.ordering import IN_TURN
from deliveries.retry import Outcome, deactivates_subscription
from sapien.core.prepared import prepared_cursor
from subscriptions.health import subscription_health_recovered
from subscriptions.models import Subscription
from subscriptions.services import subscription_disable, subscription_health_record

logger = logging.getLogger(__name__)

# A delivery a worker may claim now: pending, due, not under a live claim, and its ordering key's turn
# (deliveries/ordering.py: always, but for an ordered subscription's). Over the unaliased table.
CLAIMABLE = (
    f"status = '{DeliveryStatus.PENDING}' AND next_attempt_at <= now()"
    " AND (claimed_until IS NULL OR claimed_until < now())"
    f" AND {IN_TURN}"
)

# The rows sending needs of each claimed delivery, from the CTEs ``claimed`` (the deliveries) and ``events``.
CLAIMED_ROWS = """
SELECT c.id, c.attempt_count,
       e.id, e.type, e.body, e.organization_id, e.created_at, e.recipient_id, e.traceparent,
       s.id, s.callback_url, s.secret, s.active, o.tier, s.previous_secret, s.previous_secret_expires_at,
       NULLIF(s.headers, '{}'::jsonb), s.ordered, s.rate_limit_per_second IS NOT NULL
FROM claimed c
JOIN events e ON e.id = c.event_id AND e.created_at = c.event_created_at
JOIN subscriptions_subscription s ON s.id = c.subscription_id
JOIN core_organization o ON o.id = s.organization_id"""

CLAIM_SQL = f"""
WITH peek AS MATERIALIZED (  -- the subscriptions whose deliveries lead the queue, unlocked: checked against their caps
    SELECT DISTINCT subscription_id FROM (
        SELECT subscription_id FROM deliveries_delivery WHERE {CLAIMABLE} ORDER BY next_attempt_at LIMIT %(batch)s
    ) head
), {CLAIM_AT_CAP_SQL}, due AS MATERIALIZED (
    SELECT id, event_created_at, subscription_id, next_attempt_at FROM deliveries_delivery
    WHERE {CLAIMABLE} AND subscription_id <> ALL(ARRAY(SELECT subscription_id FROM at_cap))
    ORDER BY next_attempt_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), {CLAIM_LIMITS_SQL}, claimed AS (  -- within each subscription's limits (deliveries/limits.py)
    UPDATE deliveries_delivery d
    SET claim_token = %(token)s, claimed_until = now() + make_interval(secs => %(lease)s),
        attempt_count = d.attempt_count + 1, updated_at = now()
    -- ARRAY(): primary-key lookups, never a scan of the table; the bounds prune it, when the statement
    -- starts, to the partitions of the claimed rows' days.
    WHERE d.id = ANY(ARRAY(SELECT id FROM allowed))
      AND d.event_created_at >= (SELECT min(event_created_at) FROM due)
      AND d.event_created_at <= (SELECT max(event_created_at) FROM due)
    RETURNING d.id, d.attempt_count, d.event_id, d.event_created_at, d.subscription_id
), events AS MATERIALIZED (  -- the claimed deliveries' events, looked up by key in their days' partitions as above
    SELECT id, type, body, organization_id, created_at, recipient_id, traceparent FROM events_event
    WHERE id = ANY(ARRAY(SELECT event_id FROM claimed))
      AND created_at >= (SELECT min(event_created_at) FROM due)
      AND created_at <= (SELECT max(event_created_at) FROM due)
), claimed_rows AS (
{CLAIMED_ROWS}
)  -- one row at least: how many were put back by the limits (deliveries/limits.py), when to claim again for
-- what they held back, and whether caps did, ride on every row
SELECT r.*, (SELECT count(*) FROM put_back), a.wake_in, a.capped
FROM claim_again a LEFT JOIN claimed_rows r ON true
"""

# A batch the relay handed over born claimed (``deliveries/handoff.py``): read, not written, and only while its
# claim holds. Its plan is generic (sapien/settings.py): the bounds, the message's values, prune the days'
# partitions when it starts. The rows are read by key alone (``handed``, materialized) and the claim checked on
# them, so that no plan can read the queue's index of pending deliveries instead, however long the queue.
HANDED_SQL = f"""
WITH handed AS MATERIALIZED (
    SELECT id, attempt_count, event_id, event_created_at, subscription_id, claim_token, status, claimed_until
    FROM deliveries_delivery
    WHERE id = ANY(%(ids)s::uuid[]) AND event_created_at >= %(since)s AND event_created_at <= %(until)s
), claimed AS (
    SELECT id, attempt_count, event_id, event_created_at, subscription_id FROM handed
    WHERE claim_token = %(token)s AND status = '{DeliveryStatus.PENDING}' AND claimed_until > now()
), events AS MATERIALIZED (
    SELECT id, type, body, organization_id, created_at, recipient_id, traceparent FROM events_event
    WHERE id = ANY(ARRAY(SELECT event_id FROM claimed)) AND created_at >= %(since)s AND created_at <= %(until)s
)
{CLAIMED_ROWS}
"""

# The record's rows arrive as two JSON documents (``record_parameters()``): one parameter each, where an array per
# column cost the worker a third of its time in the statement's parameters.
SENT_COLUMNS = (
    "delivery_id uuid, event_created_at timestamptz, number int, started_at timestamptz, duration_ms int,"
    " status_code int, succeeded boolean, error text, response_excerpt text, organization_id uuid"
)
OUTCOME_COLUMNS = (
    "id uuid, event_created_at timestamptz, status text, next_attempt_at timestamptz, status_code int, error text,"
    " completed_at timestamptz"
)

RECORD_SQL = f"""
WITH sent AS MATERIALIZED (  -- the attempts made
    SELECT * FROM jsonb_to_recordset(%(sent)s::jsonb) AS a({SENT_COLUMNS})
), attempts AS (  -- every attempt is a fact, kept even when the claim went stale
    INSERT INTO deliveries_deliveryattempt (
        delivery_id, event_created_at, number, started_at, duration_ms, status_code, succeeded, error,
        response_excerpt
    )
    SELECT delivery_id, event_created_at, number, started_at, duration_ms, status_code, succeeded, error,
           response_excerpt
    FROM sent
    RETURNING delivery_id, started_at, duration_ms, status_code, succeeded, error  -- for the health CTE
), recorded AS (  -- the new delivery states, only where the claim still holds
UPDATE deliveries_delivery d
SET status = v.status, next_attempt_at = v.next_attempt_at, last_status_code = v.status_code,
    last_error = v.error, completed_at = v.completed_at,
    claim_token = NULL, claimed_until = NULL, updated_at = now()
FROM jsonb_to_recordset(%(outcomes)s::jsonb) AS v({OUTCOME_COLUMNS})
WHERE d.id = v.id AND d.event_created_at = v.event_created_at AND d.claim_token = %(token)s
  -- the rows' keys and days again, as values: the generic plan reads each by its key in the days' partitions only,
  -- where a join alone (the planner counts 100 rows from any JSON document) read small partitions whole, larger ones
  -- by a probe of each partition for each row
  AND d.id = ANY(%(ids)s::uuid[]) AND d.event_created_at >= %(since)s AND d.event_created_at <= %(until)s
RETURNING d.id, d.organization_id, d.subscription_id, d.status
), counted AS (  -- deliveries/counters.py: /metrics' totals, committed with what they count
    {outcome_counts_sql(sent="sent", recorded="recorded")}
), released AS (  -- deliveries/limits.py: the recorded deliveries no longer count as in flight
    {released_sql(recorded="recorded", attempts="attempts")}
), health AS (  -- deliveries/health.py: each subscription's hour, for GET …/stats
    {health_counts_sql(attempts="attempts", recorded="recorded")}
), recovered AS (  -- a success ends an active subscription's run of failures (subscription_health_record counts
    -- them; a disabled one keeps its run until re-enabled); those told they were failing are returned, to be told
    -- they recovered (subscription_health_recovered)
    UPDATE subscriptions_subscription SET consecutive_failures = 0, failing_since = NULL
    WHERE id IN (SELECT subscription_id FROM recorded WHERE status = '{DeliveryStatus.SUCCEEDED}')
      AND active AND (consecutive_failures > 0 OR failing_notified_at IS NOT NULL)
    RETURNING id, failing_notified_at IS NOT NULL AS notified
)
SELECT id, false FROM recorded
UNION ALL SELECT id, true FROM recovered WHERE notified
"""


@dataclass(frozen=True)
class ClaimedEvent:
    """What sending needs of the delivery's event, as the claim read it."""

    id: uuid.UUID
    type: str
    body: str
    organization_id: uuid.UUID
    created_at: datetime
    recipient_id: uuid.UUID | None = None
    traceparent: str | None = None  # the W3C trace context it was recorded in, sent along (sapien.core.tracing)


@dataclass(frozen=True)
class ClaimedSubscription:
    """Where to send the delivery and with which secrets, as the claim read them."""

    id: uuid.UUID
    callback_url: str
    secret: str
    active: bool
    previous_secret: str = ""
    previous_secret_expires_at: datetime | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # custom headers: the values are secrets
    ordered: bool = False  # its deliveries go one per key at a time: finishing one makes the key's next due
    rate_limited: bool = False  # finishing one gives its room back a second later (deliveries/limits.py)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with: the current one, and the previous one during its grace period."""
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery under a claim, with what sending it needs: copies of the rows as claimed, never saved."""

    id: uuid.UUID
    attempt: int  # this attempt's number, 1-based: the claim counted it
    event: ClaimedEvent
    subscription: ClaimedSubscription
    tier: str  # the subscription's organization's, for its retry budget

    @property
    def addressed(self) -> bool:
        return self.event.recipient_id == self.subscription.id


def claim_lease_seconds(batch_size: int) -> float:
    rounds = math.ceil(batch_size / max(settings.ESL_DELIVERY_CONCURRENCY, 1))
    send_seconds = settings.ESL_CONNECT_TIMEOUT_SECONDS + settings.ESL_READ_TIMEOUT_SECONDS
    return rounds * send_seconds + settings.ESL_CLAIM_LEASE_MARGIN_SECONDS


class ClaimedBatch(list[ClaimedDelivery]):
    """A claim's deliveries, how many more it found due but put back to respect their subscriptions' limits, and
    whether in-flight caps held some back where they were: a claim that came back short only because of those is
    no sign that nothing more is due."""

    def __init__(
        self, deliveries: Iterable[ClaimedDelivery] = (), *, put_back: int = 0, wake_in: float | None = None,
        capped: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(deliveries)
        self.put_back = put_back
        self.wake_in = wake_in  # in how many seconds the first of those held back may have room again
        self.capped = capped  # room comes back as the sends in flight are recorded


def claim_due(*, batch_size: int, token: uuid.UUID) -> list[ClaimedDelivery]:
    """Claims up to ``batch_size`` due deliveries in one statement (its own short transaction), within their
    subscriptions' limits (``deliveries/limits.py``): a ``ClaimedBatch``, which tells how many it put back."""
    # One statement: atomic without BEGIN and COMMIT round trips; prepared, since planning it costs as much as
    # running it (sapien/core/prepared.py).
    with prepared_cursor() as cursor:
        cursor.execute(
            CLAIM_SQL,
            {"batch": batch_size, "token": token, "lease": claim_lease_seconds(batch_size), **claim_limit_parameters()},
        )
        rows = cursor.fetchall()
    claimed = claimed_from_rows(row[:-3] for row in rows if row[0] is not None)
    return ClaimedBatch(claimed, put_back=rows[0][-3], wake_in=rows[0][-2], capped=rows[0][-1])


def handed_deliveries(
    *, token: uuid.UUID, ids: Sequence[uuid.UUID], since: datetime, until: datetime
) -> list[ClaimedDelivery]:
    """The deliveries of a batch handed over born claimed under ``token``, as a claim would return them; those
    whose claim lapsed (and may be another worker's by now) are left out."""
    with prepared_cursor() as cursor:
        cursor.execute(HANDED_SQL, {"token": token, "ids": list(ids), "since": since, "until": until})
        return claimed_from_rows(cursor.fetchall())


def claimed_from_rows(rows: Iterable[tuple[Any, ...]]) -> list[ClaimedDelivery]:
    """``CLAIMED_ROWS``' rows as ``ClaimedDelivery``s."""
    claimed = []
    for (delivery_id, attempt, event_id, event_type, body, organization_id, created_at, recipient_id, traceparent,
         subscription_id, callback_url, secret, active, tier, previous_secret, previous_expires, headers,
         ordered, rate_limited) in rows:  # fmt: skip
        event = ClaimedEvent(
            id=event_id, type=event_type, body=body, organization_id=organization_id,
            created_at=created_at, recipient_id=recipient_id, traceparent=traceparent,
        )  # fmt: skip
        subscription = ClaimedSubscription(
            id=subscription_id, callback_url=callback_url, secret=secret, active=active,
            previous_secret=previous_secret, previous_secret_expires_at=previous_expires,
            headers=_headers(headers), ordered=ordered, rate_limited=rate_limited,
        )  # fmt: skip
        claimed.append(
            ClaimedDelivery(id=delivery_id, attempt=attempt, event=event, subscription=subscription, tier=tier)
        )
    return claimed


def _headers(value: str | dict[str, str] | None) -> dict[str, str]:
    """A subscription's custom headers as read (jsonb reaches a cursor as text; NULL when there are none)."""
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else value


def has_due_deliveries() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM deliveries_delivery WHERE {CLAIMABLE})")
        row = cursor.fetchone()
    return bool(row and row[0])


def record_parameters(outcomes: list[Outcome], *, token: uuid.UUID, now: datetime) -> dict[str, Any]:
    """``RECORD_SQL``'s parameters: the attempts made (``sent``) and the new delivery states (``outcomes``), each
    one JSON document; the deliveries' keys and the span of their events' times."""
    sent = [
        {
            "delivery_id": outcome.delivery.id, "event_created_at": outcome.delivery.event.created_at,
            "number": outcome.delivery.attempt, "started_at": result.started_at, "duration_ms": result.duration_ms,
            "status_code": result.status_code, "succeeded": outcome.status == DeliveryStatus.SUCCEEDED,
            "error": result.error, "response_excerpt": result.response_excerpt,  # storable (DeliveryResult)
            "organization_id": outcome.delivery.event.organization_id,
        }
        for outcome in outcomes
        if (result := outcome.result) is not None
    ]  # fmt: skip
    states = [
        {
            "id": outcome.delivery.id, "event_created_at": outcome.delivery.event.created_at,
            "status": str(outcome.status), "next_attempt_at": outcome.next_attempt_at,
            "status_code": outcome.result.status_code if outcome.result else None, "error": outcome.error,
            "completed_at": None if outcome.status == DeliveryStatus.PENDING else now,
        }
        for outcome in outcomes
    ]  # fmt: skip
    days = [outcome.delivery.event.created_at for outcome in outcomes]
    return {
        "token": token,
        "recorded_at": timezone.now(),  # deliveries/limits.py: the sends' starts on the database's clock
        "sent": orjson.dumps(sent).decode(),
        "outcomes": orjson.dumps(states).decode(),
        "ids": [outcome.delivery.id for outcome in outcomes],
        "since": min(days),
        "until": max(days),
        **counter_parameters(per_organization=settings.ESL_METRICS_PER_ORGANIZATION),
    }


def record_outcomes(outcomes: Iterable[Outcome], *, token: uuid.UUID) -> None:
    """Writes attempts and delivery states in one transaction; a stale claim's states are dropped.

    Successes (and retries still pending) take one autocommitted statement; a final failure or a 410 adds the
    subscription's health bookkeeping, in a transaction with it. A success that ends a failing episode (or a
    disabled subscription's probe) is announced after it, in a transaction of its own: a success announced
    by none (a crash in between) is announced by the subscription's next one.
    """
    outcomes = list(outcomes)
    if not outcomes:
        return
    now = timezone.now()
    touches_health = any(
        outcome.result is not None
        and (outcome.status == DeliveryStatus.FAILED or deactivates_subscription(outcome.result.status_code))
        for outcome in outcomes
    )
    held = throttles(outcomes, now=now)  # a 429 or 503 with Retry-After holds its whole subscription back
    # Throttled in the transaction that frees the claim's room: no claim takes that room before the throttle.
    with transaction.atomic() if touches_health or held else nullcontext():
        with prepared_cursor() as cursor:  # planning it cost more than running it (sapien/core/prepared.py)
            cursor.execute(RECORD_SQL, record_parameters(outcomes, token=token, now=now))
            rows = cursor.fetchall()
        applied = {row[0] for row in rows if not row[1]}
        recorded = [outcome for outcome in outcomes if outcome.delivery.id in applied]
        log_outcomes(recorded)
        subscriptions_throttle(held)
        # Told they recover: subscriptions told they were failing that succeeded again, and disabled ones whose
        # receiver answered a ping (their half-open probe). Seldom any.
        recovered = {row[0] for row in rows if row[1]} | {
            o.delivery.subscription.id
            for o in recorded
            if o.status == DeliveryStatus.SUCCEEDED and not o.delivery.subscription.active
        }
        if touches_health:
            record_health(recorded, now=now)
        if recovered:
            subscription_health_recovered(subscription_ids=recovered, now=now)


def record_health(recorded: list[Outcome], *, now: datetime) -> None:
    """Disables on a 410, and counts deliveries that ended failed (``subscription_health_record``): in the
    record statement's transaction."""
    gone = {
        outcome.delivery.subscription.id
        for outcome in recorded
        if outcome.result is not None and deactivates_subscription(outcome.result.status_code)
    }
    for subscription in Subscription.objects.select_for_update().filter(id__in=gone, active=True):
        subscription_disable(subscription=subscription, reason="The receiver answered 410 Gone.", now=now)
    ended_failed = [o for o in recorded if o.status == DeliveryStatus.FAILED and o.result is not None]
    failed = Counter(o.delivery.subscription.id for o in ended_failed)
    reasons = {o.delivery.subscription.id: o.error for o in ended_failed}  # the last one of each
    subscription_health_record(failed=failed, now=now, reasons=reasons)


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
