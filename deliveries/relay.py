"""The relay: fans outbox events out into deliveries, in set-based SQL.

One short transaction per batch: take the oldest outbox entries with ``FOR UPDATE
SKIP LOCKED`` (deleting them: an event leaves the outbox when it is relayed, and
its own row is never rewritten), count them against their organization's hourly
quota, and insert one delivery per matching subscription (the unique constraint
makes it idempotent) whose payload filter, if any, the event's body contains: only
then is that body read. Deliveries of events past the quota are due at the next
window instead of now; the others, when the relay hands them over, are born
claimed by the worker that gets them (``deliveries/handoff.py``). Several relays
can run at once: each takes entries the others have not locked.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from deliveries.counters import counter_parameters, relay_counts_sql
from deliveries.handoff import NOT_HANDING, HandedBatch, hand_parameters, hand_to_workers
from deliveries.limits import born_claimable_sql, born_counted_sql, claim_limit_parameters, in_flight_sql
from deliveries.new_deliveries import BirthClaim, new_deliveries_sql
from deliveries.ordering import born_claimable, delivery_ordering_key
from deliveries.wakeups import wake_delivery_workers
from sapien.core import tracing
from sapien.core.prepared import prepared_cursor
from sapien.events.catalog import patterns_match_sql
from sapien.events.envelope import isoformat_z
from sapien.events.outbox import record_event
from sapien.events.quota import WARNING_SHARE, WINDOW, Counted, counted_sql, quota_limits, window_start_sql
from sapien.events.selectors import body_as_jsonb_sql
from subscriptions.payload_filter import filter_passes_sql

# Payload filters (subscriptions/payload_filter.py), apart from the unfiltered fan-out: only an event that an active
# subscription with a filter wants by its type has its body read, and cast to jsonb once, however many filters it
# meets; for the others (and every event of an organization without filters) nothing more is read.
FILTER_BODIES_SQL = """filtering AS MATERIALIZED (  -- once per organization of the batch: has it an active filter?
    SELECT o.organization_id FROM (SELECT DISTINCT organization_id FROM placed) AS o
    WHERE EXISTS (SELECT 1 FROM subscriptions_subscription s
                  WHERE s.organization_id = o.organization_id AND s.active AND s.filter IS NOT NULL)
), filtered AS MATERIALIZED (
    SELECT e.id, e.created_at FROM placed e JOIN filtering USING (organization_id)
    WHERE e.recipient_id IS NULL
      AND EXISTS (SELECT 1 FROM subscriptions_subscription s
                  WHERE s.organization_id = e.organization_id AND s.active AND s.filter IS NOT NULL AND {matches})
), filter_bodies AS MATERIALIZED (  -- (id, created_at): the event's partition only
    SELECT b.id, {body} AS body
    FROM filtered f JOIN events_event b ON b.id = f.id AND b.created_at = f.created_at"""

# Event ``e`` reaches subscription ``s`` (of its organization): its recipient, if it has one; else any active
# subscription to its type ({matches}) that its payload filter, when asked ({filters}), lets through.
REACHES_SQL = "CASE WHEN e.recipient_id IS NOT NULL THEN s.id = e.recipient_id ELSE s.active AND {matches}{filters} END"
MATCHES_SQL = patterns_match_sql("s.events", "e.type")

# The subscriptions a batch's deliveries may be born claimed for: those its events reach, filters aside.
REACHABLE_SQL = f"""SELECT s.id FROM placed e JOIN subscriptions_subscription s ON s.organization_id = e.organization_id
    WHERE %(hand)s AND {REACHES_SQL.format(matches=MATCHES_SQL, filters="")}"""

RELAY_SQL = """
WITH due AS MATERIALIZED (
    SELECT created_at, event_id FROM events_outbox
    ORDER BY created_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), claimed AS (  -- taken out of the outbox: the event rows are never rewritten, and read only for payload filters
    DELETE FROM events_outbox
    WHERE (created_at, event_id) IN (SELECT created_at, event_id FROM due)
    RETURNING event_id AS id, organization_id, type, created_at, recipient_id, ordering_key,
              {window_start} AS window_start, {counted} AS counted
), windows AS (
    SELECT organization_id, window_start, count(*)::int AS added
    FROM claimed WHERE counted
    GROUP BY organization_id, window_start
), counted AS (
    INSERT INTO events_quotausage (organization_id, window_start, events)
    SELECT organization_id, window_start, added FROM windows
    ON CONFLICT (organization_id, window_start) DO UPDATE SET events = events_quotausage.events + EXCLUDED.events
    RETURNING organization_id, window_start, events AS after
), quota AS (
    SELECT c.organization_id, c.window_start, c.after - w.added AS before, c.after, l.events_per_hour AS quota
    FROM counted c
    JOIN windows w USING (organization_id, window_start)
    JOIN core_organization o ON o.id = c.organization_id
    JOIN unnest(%(tiers)s::text[], %(limits)s::int[]) AS l(tier, events_per_hour) ON l.tier = o.tier
), placed AS (
    SELECT e.id, e.organization_id, e.type, e.created_at, e.recipient_id, e.ordering_key,
           CASE WHEN q.before + row_number() OVER (PARTITION BY e.organization_id, e.window_start, e.counted
                                                   ORDER BY e.created_at, e.id) > q.quota
                THEN e.window_start + make_interval(secs => %(window)s) END AS not_before
    FROM claimed e
    LEFT JOIN quota q ON e.counted AND q.organization_id = e.organization_id AND q.window_start = e.window_start
), flights AS MATERIALIZED (  -- deliveries/limits.py: what the subscriptions the batch may reach have in flight
    {in_flight}
), {filter_bodies}
), fanned AS (
    {insert_deliveries}
    FROM placed e
    JOIN subscriptions_subscription s ON s.organization_id = e.organization_id
    LEFT JOIN filter_bodies fb ON fb.id = e.id
    LEFT JOIN flights fl ON fl.subscription_id = s.id
    WHERE {reaches}
    ON CONFLICT (event_id, subscription_id, event_created_at) DO NOTHING
    RETURNING id, organization_id, event_created_at, claim_token, subscription_id
), born_counted AS (  -- deliveries/limits.py: the deliveries born claimed count as in flight
    {born_counted}
), relay_counted AS (  -- deliveries/counters.py: /metrics' totals, committed with what they count
    {count}
), handed AS (  -- the deliveries born claimed, by claim: each is one worker's batch (deliveries/handoff.py)
    SELECT claim_token AS token, array_agg(id) AS ids, min(event_created_at) AS since, max(event_created_at) AS until
    FROM fanned WHERE claim_token IS NOT NULL
    GROUP BY claim_token
)
SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM fanned),
       (SELECT coalesce(json_agg(handed), '[]') FROM handed),
       q.organization_id, q.window_start, q.before, q.after, q.quota
FROM (SELECT 1) AS one LEFT JOIN quota q ON true
""".format(
    window_start=window_start_sql("created_at"),
    counted=counted_sql("type"),
    filter_bodies=FILTER_BODIES_SQL.format(matches=MATCHES_SQL, body=body_as_jsonb_sql("b.body")),
    reaches=REACHES_SQL.format(
        matches=MATCHES_SQL, filters=" AND " + filter_passes_sql(body_jsonb="fb.body", payload_filter="s.filter")
    ),
    count=relay_counts_sql(events="placed", deliveries="fanned"),
    born_counted=born_counted_sql(fanned="fanned"),
    in_flight=in_flight_sql(subscriptions=REACHABLE_SQL),
    insert_deliveries=new_deliveries_sql(
        event="e",
        subscription_id="s.id",
        due_at="greatest(now(), e.not_before)",
        # Due now and handed over: born claimed, %(hand_size)s to a claim. Never when not handing (%(hand)s), nor
        # when an ordered subscription's key must wait for its turn (deliveries/ordering.py).
        claim=BirthClaim(
            when=f"%(hand)s AND e.not_before IS NULL AND {born_claimable(subscription='s', event='e')}"
            f" AND {born_claimable_sql(subscription='s', event='e', in_flight='fl.in_flight')}",  # deliveries/limits.py
            token="md5(%(hand_token)s || ((row_number() OVER () - 1) / %(hand_size)s)::text)::uuid",  # noqa: S106
            until="now() + make_interval(secs => %(hand_lease)s)",
        ),
        ordering_key=delivery_ordering_key(subscription="s", event="e"),
    ),
)


@dataclass(frozen=True)
class RelayBatch:
    events: int
    deliveries: int
    handed: tuple[HandedBatch, ...] = ()  # the deliveries born claimed, batch by batch (only when handing over)


def relay_parameters(*, batch_size: int, hand: bool = False) -> dict[str, Any]:
    """``RELAY_SQL``'s parameters: the batch, the tiers' quotas, the quota window, the counters' shard, and
    whether (and how) the deliveries due now are born claimed to be handed over."""
    tiers, limits = zip(*quota_limits().items(), strict=True)
    return {
        **(hand_parameters(batch_size=settings.ESL_DELIVERY_BATCH_SIZE) if hand else NOT_HANDING),
        "batch": batch_size,
        **claim_limit_parameters(),
        "tiers": list(tiers),
        "limits": list(limits),
        "window": WINDOW.total_seconds(),
        **counter_parameters(per_organization=settings.ESL_METRICS_PER_ORGANIZATION),
    }


def relay_batch(*, batch_size: int, hand: bool = False) -> RelayBatch:
    """Relays one batch in one statement (claim, count against the quota, fan out) and its own transaction.

    Deliveries of events past their organization's hourly quota are due when the next window opens. With
    ``hand``, the caller hands the result's ``handed`` batches to workers (``deliveries/handoff.py``): the
    deliveries due now are born claimed for them.
    """
    # Prepared: planning the statement cost more than running it for the one event a pass usually finds.
    with transaction.atomic(), prepared_cursor() as cursor:
        cursor.execute(RELAY_SQL, relay_parameters(batch_size=batch_size, hand=hand))
        rows = cursor.fetchall()
        for *_, organization_id, start, before, after, quota in rows:
            if organization_id is not None:
                announce_thresholds(Counted(organization_id, start, before=before, after=after, limit=quota))
    events, deliveries, handed = rows[0][:3]
    return RelayBatch(events=events, deliveries=deliveries, handed=tuple(HandedBatch.from_row(row) for row in handed))


def announce_thresholds(counted: Counted) -> None:
    """``system.rate_limit.warning`` at 80 % and ``…exceeded`` at 100 %: once per window, when crossed."""
    warning_at = math.ceil(counted.limit * WARNING_SHARE)
    window = {
        "limit": counted.limit,
        "used": counted.after,
        "window_start": isoformat_z(counted.window_start),
        "window_end": isoformat_z(counted.window_start + WINDOW),
    }
    if counted.before < warning_at <= counted.after:
        record_event(
            organization_id=counted.organization_id,
            event_type="system.rate_limit.warning",
            data={**window, "threshold_percent": 80},
        )
    if counted.before < counted.limit <= counted.after:
        record_event(
            organization_id=counted.organization_id,
            event_type="system.rate_limit.exceeded",
            data={**window, "threshold_percent": 100, "deliveries_resume_at": window["window_end"]},
        )


def relay_and_wake_workers() -> RelayBatch:
    """Relays what is pending, handing each batch's deliveries to workers as soon as it commits; when some were
    born pending instead (their subscription's limits decide at the claim, deliveries/limits.py), wakes one
    worker to claim them rather than leave them to the next sweep."""
    handed = 0

    def hand(batches: list[HandedBatch]) -> None:
        nonlocal handed
        handed += sum(len(batch.ids) for batch in batches)
        hand_to_workers(batches)

    result = relay_pending(batch_size=settings.ESL_RELAY_BATCH_SIZE, hand_to=hand)
    if result.deliveries > handed:
        wake_delivery_workers(1)
    return result


def relay_pending(
    *, batch_size: int, max_batches: int = 1000, hand_to: Callable[[list[HandedBatch]], None] | None = None
) -> RelayBatch:
    """Relays until the outbox is empty (or ``max_batches`` were done); returns the totals.

    With ``hand_to``, the deliveries due now are born claimed and passed to it batch by batch, after each
    commit; without, they are born pending, for whichever worker claims them.
    """
    events = deliveries = 0
    for _ in range(max_batches):
        with tracing.span("sapien.outbox.relay") as span:  # the hand-over's task messages carry it to the workers
            batch = relay_batch(batch_size=batch_size, hand=hand_to is not None)
            tracing.set_attributes(
                span, {"sapien.relay.events": batch.events, "sapien.relay.deliveries": batch.deliveries}
            )
            if hand_to is not None and batch.handed:
                hand_to(list(batch.handed))
        events += batch.events
        deliveries += batch.deliveries
        if batch.events < batch_size:
            break
    return RelayBatch(events=events, deliveries=deliveries)
