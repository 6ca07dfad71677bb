"""Receiver control: a subscription's rate limit, its cap on deliveries in flight, and its Retry-After throttle.

Enforced where deliveries are taken, set-based, for every worker on every host alike:

- **The claim** (``deliveries/claims.py``) counts what it found due per subscription, then takes each
  subscription's allowance in one ``INSERT … ON CONFLICT DO UPDATE`` of its ``subscriptions_sendstate`` row:
  ``allowance = min(wanted, max_in_flight - in flight, rate_limit_per_second - in flight - sends answered within
  the last second)``, 0 while ``throttled_until`` is ahead. The row is locked in subscription order and computed
  from its latest version, so concurrent claims never both spend the same room. The deliveries ranked past the allowance
  (``ROW_NUMBER() OVER (PARTITION BY subscription)``) are not claimed but put back later, out of the other
  subscriptions' way: until the throttle ends; under a rate limit, in a queue after those put back before
  (``put_back_until`` moves on by ``1/rate`` for each), ``rate`` of them due at once each second from when the
  window next has room (``room_at``), so a backlog comes due as fast as it may be sent and no sooner; but while
  the window is full (nothing taken), the oldest stay due, first in line for its room. At an in-flight cap (no
  rate limit) they stay due, first in line, untouched: a claim first looks at the subscriptions of the deliveries
  that lead the queue (``peek``) and passes over those at their cap (``at_cap``, their state rows read without
  the lock), so that their deliveries neither fill the batch nor are moved back for nothing (an update each, of
  every index); the allowance, under the lock, still decides. The claim tells its worker when to claim again for
  those it could not take (``held``), and whether caps held any back (``capped``): a worker with sends in flight
  keeps claiming as their records give the room back.
- **The relay** (``deliveries/relay.py``) births claimed only deliveries of subscriptions without a limit of their
  own and not throttled, within the default cap, and counts them on the same row.
- **The record** of outcomes (``deliveries/claims.py``) gives each claim's room back.

Under a rate limit a delivery counts from its claim while it is in flight, then until ``RATE_WINDOW_SECONDS``
after its answer (the latest answer of those its worker recorded together, within one record slice): a request
reaches the receiver between its claim and its answer, so of any requests that reach it within one second, the
last claimed was claimed while all the others still counted, and at most ``rate`` of them do, however long they
queued before their send or took to connect. The answer's time is the worker's (``started_at`` and the duration)
carried over to the database's clock by how long before the record it was, so workers' clocks need not agree.
The throughput is ``rate`` over one second plus the time from a room's return to the next sends (the wake-up,
the claim, the sending threads' queue) plus the answers' latency.

Until the first answers are recorded nothing tells when the window has room: the worker that records them wakes
a worker then (``deliveries/dispatch.py``); after, the claim itself says when (``held``).

In flight is kept per claim (token, lease end, deliveries not recorded yet), so a claim whose worker died stops
counting when its lease lapses, exactly when its deliveries become claimable again: nothing leaks. A claim cleared
without a record (a redelivery in flight, a hand-over the broker refused) counts until its lease ends.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from deliveries.retry import Outcome, parse_retry_after
from subscriptions.models import SendState

STATE = SendState._meta.db_table
STATE_COLUMNS = "subscription_id, taken, flight_tokens, flight_until, flight_counts, sent_at, sent_counts"
# A delivery counts against its subscription's rate until this long after its answer.
RATE_WINDOW_SECONDS = 1.0
# When in-flight caps held due deliveries back, how soon a worker is woken to claim again, unless sends of its own
# in flight give the room back first (room comes back as sends are recorded).
DEFER_SECONDS = 0.5


def _live_flights_sql(tokens: str, until: str, counts: str) -> str:
    """A SELECT of the live claims of a state row's arrays (``tokens``, ``until``, ``counts``) and their sum."""
    return f"""SELECT coalesce(array_agg(u.token), '{{}}') AS tokens, coalesce(array_agg(u.until), '{{}}') AS until,
           coalesce(array_agg(u.n), '{{}}') AS counts, coalesce(sum(u.n), 0) AS in_flight
    FROM unnest({tokens}, {until}, {counts}) AS u(token, until, n) WHERE u.until > now() AND u.n > 0"""


def _recent_finishes_sql(sent_at: str, sent_counts: str) -> str:
    """A SELECT of the finishes within the rate window of a state row's arrays, and their sum."""
    return f"""SELECT coalesce(array_agg(u.at), '{{}}') AS sent_at, coalesce(array_agg(u.n), '{{}}') AS counts,
           coalesce(sum(u.n), 0) AS sent
    FROM unnest({sent_at}, {sent_counts}) AS u(at, n)
    WHERE u.at > now() - make_interval(secs => {RATE_WINDOW_SECONDS})"""


def _take_sql(*, state: str | None) -> str:
    """A SELECT of a subscription's ``taken`` and new state after a claim under ``%(token)s``, by
    ``sapien_send_take()`` (subscriptions/migrations/0005_send_state.py) over the ``wanted`` row ``w`` and the
    state row ``state`` (``None``: none yet)."""
    arrays = (
        f"{state}.flight_tokens, {state}.flight_until, {state}.flight_counts, {state}.sent_at, {state}.sent_counts,"
        f" {state}.put_back_until, w.n, w.cap, w.rate, greatest(w.throttled, {state}.throttled_until)"
        if state
        else "'{}', '{}', '{}', '{}', '{}', NULL, w.n, w.cap, w.rate, w.throttled"
    )
    return f"SELECT t.* FROM sapien_send_take({arrays}, %(token)s, %(lease)s, {RATE_WINDOW_SECONDS}) AS t"


FRESH_TAKE = _take_sql(state=None)
LOCKED_TAKE = _take_sql(state="st")

# The claim's CTE before ``due``: of the subscriptions in ``peek`` (subscription_id: those whose deliveries lead the
# queue), those without a rate limit at their in-flight cap, read without the lock. Parameter: %(default_cap)s.
CLAIM_AT_CAP_SQL = f"""at_cap AS MATERIALIZED (  -- deliveries/limits.py: whose due deliveries this claim passes over
    SELECT p.subscription_id FROM peek p
    JOIN subscriptions_subscription s ON s.id = p.subscription_id
    JOIN {STATE} st ON st.subscription_id = p.subscription_id
    CROSS JOIN LATERAL ({_live_flights_sql("st.flight_tokens", "st.flight_until", "st.flight_counts")}) f
    WHERE s.rate_limit_per_second IS NULL AND f.in_flight >= coalesce(s.max_in_flight, %(default_cap)s)
)"""

# The claim's CTEs, between ``due`` (the deliveries found due and locked: id, event_created_at, subscription_id,
# next_attempt_at) and the update that claims ``allowed``. Parameters: %(token)s, %(lease)s, %(default_cap)s,
# %(in_line)s.
CLAIM_LIMITS_SQL = f"""wanted AS MATERIALIZED (  -- deliveries/limits.py: what each subscription would take, its limits
    SELECT w.subscription_id, w.n, s.rate_limit_per_second AS rate,
           coalesce(s.max_in_flight, %(default_cap)s) AS cap, s.throttled_until AS throttled
    FROM (SELECT subscription_id, count(*)::int AS n FROM due GROUP BY subscription_id) w
    JOIN subscriptions_subscription s ON s.id = w.subscription_id
), allowance AS (  -- each subscription's room, taken on its latest state row, locked in subscription order
    INSERT INTO {STATE} AS st ({STATE_COLUMNS}, put_back_until)
    SELECT w.subscription_id, fresh.* FROM wanted w CROSS JOIN LATERAL ({FRESH_TAKE}) fresh
    ORDER BY w.subscription_id
    ON CONFLICT (subscription_id) DO UPDATE
    SET (taken, flight_tokens, flight_until, flight_counts, sent_at, sent_counts, put_back_until) = (
        SELECT taken.* FROM wanted w
        CROSS JOIN LATERAL ({LOCKED_TAKE}) taken
        WHERE w.subscription_id = st.subscription_id
    )
    -- room_at: when the window next has room, as sapien_send_take() computes it: when its oldest recorded send
    -- leaves it (room_known; none recorded yet: a second from now, at the soonest)
    RETURNING st.subscription_id, st.taken, st.throttled_until, st.put_back_until,
              (SELECT min(at) FROM unnest(st.sent_at) AS at) + make_interval(secs => {RATE_WINDOW_SECONDS})
              AS room_known,
              coalesce((SELECT min(at) FROM unnest(st.sent_at) AS at), now())
              + make_interval(secs => {RATE_WINDOW_SECONDS}) AS room_at
), held AS (  -- in how many seconds to claim again: when the first of those held back may go, or, under a rate
    -- limit with a queue left, the queue's next second; when the window is full of sends still open, the
    -- record of their answers wakes a worker (deliveries/dispatch.py), not a guess that would come too early
    SELECT extract(epoch FROM min(CASE
               WHEN greatest(w.throttled, a.throttled_until) > now() THEN greatest(w.throttled, a.throttled_until)
               WHEN w.rate IS NOT NULL THEN a.room_known
               ELSE now() + make_interval(secs => {DEFER_SECONDS})
           END) - now())::float8 AS wake_in
    FROM allowance a JOIN wanted w USING (subscription_id)
    WHERE a.taken < w.n OR (w.rate IS NOT NULL AND a.taken > 0 AND a.put_back_until > a.room_at)
), ranked AS MATERIALIZED (
    SELECT r.id, r.past,
           CASE  -- for those past the allowance: when they are due again (NULL: left as they are)
               WHEN r.throttled > now() THEN r.throttled
               -- under a rate limit with the window full, the oldest stay due, first in line when its room
               -- comes back (a worker is woken then): moved to the queue's end, they would miss it; a quarter of
               -- a worker's batch at most (%(in_line)s), so as not to crowd the other subscriptions out meanwhile
               WHEN w.rate IS NOT NULL AND a.taken = 0 AND r.past <= least(w.rate, %(in_line)s) THEN NULL
               -- under a rate limit, after those put back before (put_back_until just moved on by 1/rate
               -- each), a second's worth to each second from when the window has room: each second's comes due
               -- at once, when its room does
               WHEN w.rate IS NOT NULL THEN a.room_at + make_interval(secs => floor(
                   extract(epoch FROM a.put_back_until - a.room_at)
                   - (w.n - a.taken - r.past + 0.5)::float8 / w.rate))  -- half a slot: room_at moved a little
               -- at the in-flight cap: first in line, untouched; the next claims pass them over while it is full
               ELSE NULL
           END AS due_again,
           r.past > 0 AND w.rate IS NULL AND NOT coalesce(r.throttled > now(), false) AS left_at_cap
    FROM (
        SELECT d.id, d.subscription_id, greatest(w.throttled, a.throttled_until) AS throttled,
               row_number() OVER (PARTITION BY d.subscription_id ORDER BY d.next_attempt_at, d.id) - a.taken AS past
        FROM due d JOIN allowance a USING (subscription_id) JOIN wanted w USING (subscription_id)
    ) r
    JOIN allowance a USING (subscription_id)
    JOIN wanted w USING (subscription_id)
), allowed AS MATERIALIZED (
    SELECT id FROM ranked WHERE past <= 0
), put_back AS (  -- the rest: later, out of the way of the other subscriptions' deliveries; by key, as claimed
    UPDATE deliveries_delivery d
    SET next_attempt_at = (SELECT r.due_again FROM ranked r WHERE r.id = d.id), updated_at = now()
    WHERE d.id = ANY(ARRAY(SELECT id FROM ranked WHERE past > 0 AND due_again IS NOT NULL))
      AND d.event_created_at >= (SELECT min(event_created_at) FROM due)
      AND d.event_created_at <= (SELECT max(event_created_at) FROM due)
    RETURNING d.id
), capped AS (  -- caps held due deliveries back: passed over, or found past the allowance
    SELECT EXISTS (SELECT 1 FROM at_cap) OR EXISTS (SELECT 1 FROM ranked WHERE left_at_cap) AS capped
), claim_again AS (  -- in how many seconds: as held says, and for what caps held back, once room may have come back
    SELECT least(h.wake_in, CASE WHEN c.capped THEN {DEFER_SECONDS}::float8 END) AS wake_in, c.capped
    FROM held h CROSS JOIN capped c
)"""


def claim_limit_parameters() -> dict[str, int]:
    return {"default_cap": settings.ESL_DEFAULT_MAX_IN_FLIGHT, "in_line": max(settings.ESL_DELIVERY_BATCH_SIZE // 4, 1)}


def in_flight_sql(*, subscriptions: str) -> str:
    """A CTE body: each of ``subscriptions``' (a SELECT of subscription ids) live in-flight count, read once per
    statement (``subscription_id``, ``in_flight``; no row when it has no state yet). Read once per subscription
    rather than once per new delivery: a state row updated many times while an old transaction is open keeps
    every version, and each read of it walks them."""
    live = _live_flights_sql("st.flight_tokens", "st.flight_until", "st.flight_counts")
    return f"""SELECT st.subscription_id, f.in_flight FROM {STATE} st CROSS JOIN LATERAL ({live}) f
    WHERE st.subscription_id IN ({subscriptions})"""


def born_claimable_sql(*, subscription: str, event: str, in_flight: str) -> str:
    """SQL true when the relay may birth a new delivery claimed: its subscription has no limit of its own and no
    live throttle, and it stays within the default cap with what is in flight (``in_flight``: its count from
    ``in_flight_sql()``, NULL for none). Over the relay's fan-out rows."""
    return f"""({subscription}.rate_limit_per_second IS NULL AND {subscription}.max_in_flight IS NULL
        AND ({subscription}.throttled_until IS NULL OR {subscription}.throttled_until <= now())
        AND row_number() OVER (PARTITION BY {subscription}.id ORDER BY {event}.created_at, {event}.id)
            + coalesce({in_flight}, 0) <= %(default_cap)s)"""


def born_counted_sql(*, fanned: str) -> str:
    """A CTE body adding the claims the relay birthed (``fanned``'s rows with a ``claim_token``: subscription_id,
    claim_token) to their subscriptions' in-flight counts, in subscription order. Parameter: %(hand_lease)s."""
    live = _live_flights_sql("st.flight_tokens", "st.flight_until", "st.flight_counts")
    return f"""INSERT INTO {STATE} AS st ({STATE_COLUMNS})
    SELECT subscription_id, 0, array_agg(claim_token), array_agg(now() + make_interval(secs => %(hand_lease)s)),
           array_agg(n), '{{}}', '{{}}'
    FROM (SELECT subscription_id, claim_token, count(*)::int AS n FROM {fanned}
          WHERE claim_token IS NOT NULL GROUP BY subscription_id, claim_token) born
    GROUP BY subscription_id ORDER BY subscription_id
    ON CONFLICT (subscription_id) DO UPDATE
    SET (flight_tokens, flight_until, flight_counts) = (
        SELECT f.tokens || EXCLUDED.flight_tokens, f.until || EXCLUDED.flight_until, f.counts || EXCLUDED.flight_counts
        FROM ({live}) f
    )"""


def released_sql(*, recorded: str, attempts: str) -> str:
    """A CTE body giving back the room of ``recorded``'s deliveries (rows with a subscription_id) on the claim
    ``%(token)s``, in subscription order; under a rate limit, those sent (``attempts``: delivery_id, started_at,
    duration_ms) count for the rate window from the last of their answers. The proposed row carries how many were
    recorded (``taken``) and, when rate-limited, that answer's time and how many were sent.

    The answer's time is the worker's (``started_at`` and the duration, a millisecond more for its rounding) read
    on the database's clock: ``now()`` less how long before ``%(recorded_at)s`` (the worker's clock, just before
    the statement) it was, so that a worker's clock running behind cannot shorten the window; the statement's own
    latency only lengthens it."""
    recent = _recent_finishes_sql("st.sent_at", "st.sent_counts")
    return f"""INSERT INTO {STATE} AS st ({STATE_COLUMNS})
    SELECT r.subscription_id, count(*)::int, '{{}}', '{{}}', '{{}}',
           CASE WHEN s.rate_limit_per_second IS NULL OR count(a.delivery_id) = 0 THEN '{{}}'::timestamptz[]
                ELSE ARRAY[now() - (%(recorded_at)s::timestamptz
                                    - max(a.started_at + make_interval(secs => (a.duration_ms + 1) / 1000.0)))] END,
           CASE WHEN s.rate_limit_per_second IS NULL OR count(a.delivery_id) = 0 THEN '{{}}'::int[]
                ELSE ARRAY[count(a.delivery_id)::int] END
    FROM {recorded} r JOIN subscriptions_subscription s ON s.id = r.subscription_id
    LEFT JOIN {attempts} a ON a.delivery_id = r.id
    GROUP BY r.subscription_id, s.rate_limit_per_second ORDER BY r.subscription_id
    ON CONFLICT (subscription_id) DO UPDATE
    SET flight_counts = (
        SELECT coalesce(array_agg(CASE WHEN u.token = %(token)s THEN u.n - EXCLUDED.taken ELSE u.n END ORDER BY u.i),
                        '{{}}')
        FROM unnest(st.flight_tokens, st.flight_counts) WITH ORDINALITY AS u(token, n, i)
    ), (sent_at, sent_counts) = (
        SELECT r.sent_at || EXCLUDED.sent_at, r.counts || EXCLUDED.sent_counts FROM ({recent}) r
    )
    WHERE %(token)s = ANY(st.flight_tokens)"""


def throttles(outcomes: Iterable[Outcome], *, now: datetime) -> dict[uuid.UUID, datetime]:
    """Until when each subscription is held back: the furthest ``Retry-After`` its receiver sent with a 429 or 503,
    within ``ESL_RETRY_MAX_DELAY_MS``. Pure."""
    cap = settings.ESL_RETRY_MAX_DELAY_MS / 1000
    until: dict[uuid.UUID, datetime] = {}
    for outcome in outcomes:
        result = outcome.result
        if result is None or result.status_code not in (429, 503):
            continue
        seconds = parse_retry_after(result.retry_after, now=now)
        if not seconds:
            continue
        subscription_id = outcome.delivery.subscription.id
        end = now + timedelta(seconds=min(seconds, cap))
        if subscription_id not in until or until[subscription_id] < end:
            until[subscription_id] = end
    return until


# On the state row, which claims lock and read at its latest, and on the subscription, which the API shows.
THROTTLE_SQL = f"""
WITH held AS (
    INSERT INTO {STATE} AS st ({STATE_COLUMNS}, throttled_until)
    SELECT v.id, 0, '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', v.until
    FROM unnest(%(ids)s::uuid[], %(until)s::timestamptz[]) AS v(id, until) ORDER BY v.id
    ON CONFLICT (subscription_id) DO UPDATE
    SET throttled_until = greatest(st.throttled_until, EXCLUDED.throttled_until)
)
UPDATE subscriptions_subscription s SET throttled_until = v.until
FROM unnest(%(ids)s::uuid[], %(until)s::timestamptz[]) AS v(id, until)
WHERE s.id = v.id AND (s.throttled_until IS NULL OR s.throttled_until < v.until)
"""


def subscriptions_throttle(until: dict[uuid.UUID, datetime]) -> None:
    """Holds each subscription back until its time: one statement, only when a receiver asked (seldom)."""
    if not until:
        return
    with connection.cursor() as cursor:
        cursor.execute(THROTTLE_SQL, {"ids": list(until), "until": list(until.values())})
