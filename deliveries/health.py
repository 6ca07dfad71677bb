"""A subscription's health by the hour: counted by the record statement, read by ``GET …/stats``.

The statement that records a batch's outcomes (``claims.RECORD_SQL``) ends with ``health_counts_sql()``, which
adds what the batch did to each of its subscriptions' row of the current hour (on the statement's counter shard,
as ``deliveries/counters.py`` does, for the same reason). ``subscription_stats()`` reads at most
``HEALTH_HOURS_KEPT`` hours of one subscription's rows, by primary key: the answer costs the same however many
deliveries the history holds. Percentiles are estimated from the duration histogram, as Prometheus'
``histogram_quantile`` does, and never exceed the longest attempt seen.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from deliveries.counters import DURATION_BUCKETS_MS, DURATION_HISTOGRAM_COUNTS, FINAL_STATUS_COUNTS
from deliveries.models import SubscriptionHealthHour
from subscriptions.health import disables_at_earliest, failing_notice_threshold
from subscriptions.models import Subscription

# Hours kept, and so how far back the last success and failure are looked for; retention deletes the rest.
HEALTH_HOURS_KEPT = 7 * 24
FAILURE_REASON_CHARS = 500

# Column → aggregate over the rows of ``health_counts_sql()``: a delivery recorded, with its attempt (``duration_ms``
# set) if one was made, and its recorded status (``finished``).
HEALTH_COUNTS = {
    "attempts": "count(duration_ms)",
    "attempts_failed": "count(duration_ms) FILTER (WHERE NOT succeeded)",
    **DURATION_HISTOGRAM_COUNTS,
    "duration_ms_max": "coalesce(max(duration_ms), 0)",
    **FINAL_STATUS_COUNTS,
    "last_success_at": "max(started_at) FILTER (WHERE succeeded)",
    "last_failure_at": "max(started_at) FILTER (WHERE NOT succeeded)",
    "last_failure_status_code": "(array_agg(status_code ORDER BY started_at DESC) FILTER (WHERE NOT succeeded))[1]",
    "last_failure_reason": (
        f"coalesce((array_agg(left(coalesce(nullif(error, ''), 'HTTP ' || status_code), {FAILURE_REASON_CHARS})"
        " ORDER BY started_at DESC) FILTER (WHERE NOT succeeded))[1], '')"
    ),
}  # fmt: skip

# How a column of the hour's row takes in a later batch's value (``EXCLUDED``); counts add up.
LATER_FAILURE = "EXCLUDED.last_failure_at >= c.last_failure_at OR c.last_failure_at IS NULL"
MERGED = {
    "duration_ms_max": "greatest(c.duration_ms_max, EXCLUDED.duration_ms_max)",
    "last_success_at": "greatest(c.last_success_at, EXCLUDED.last_success_at)",  # greatest() skips NULLs
    "last_failure_at": "greatest(c.last_failure_at, EXCLUDED.last_failure_at)",
    "last_failure_status_code": (
        f"CASE WHEN {LATER_FAILURE} THEN EXCLUDED.last_failure_status_code ELSE c.last_failure_status_code END"
    ),
    "last_failure_reason": (
        f"CASE WHEN {LATER_FAILURE} THEN EXCLUDED.last_failure_reason ELSE c.last_failure_reason END"
    ),
}


def health_counts_sql(*, attempts: str, recorded: str) -> str:
    """The record statement's per-subscription counting: the attempts of ``attempts`` (the rows inserted) whose
    delivery's state was recorded (``recorded``: the claim still held), and the deliveries of ``recorded`` that
    reached a final status. It reads the statement's rows rather than its array parameters again: bound on the
    client, each mention of an array is one more literal for the server to parse and plan. One row per
    subscription of the batch, locked in subscription order (one lock order for every statement); nothing is
    written, or locked, when the batch recorded nothing."""
    table = SubscriptionHealthHour._meta.db_table
    columns = ", ".join(HEALTH_COUNTS)
    aggregates = ",\n           ".join(HEALTH_COUNTS.values())
    merged = ",\n        ".join(
        f"{column} = {MERGED.get(column, f'c.{column} + EXCLUDED.{column}')}" for column in HEALTH_COUNTS
    )
    return f"""INSERT INTO {table} AS c (subscription_id, hour, shard, {columns})
    SELECT subscription_id, date_trunc('hour', now()), %(counter_shard)s, {aggregates}
    FROM (  -- one row per delivery recorded, with its attempt if one was made (at most one per record)
        SELECT r.subscription_id, a.duration_ms, a.succeeded, a.started_at, a.status_code, a.error,
               r.status AS finished
        FROM {recorded} r LEFT JOIN {attempts} a ON a.delivery_id = r.id
    ) AS outcomes
    GROUP BY subscription_id
    ORDER BY subscription_id
    ON CONFLICT (subscription_id, hour, shard) DO UPDATE SET
        {merged}"""


SUMMED = ["attempts", "attempts_failed", *(f"duration_le_{edge}ms" for edge in DURATION_BUCKETS_MS),
          "deliveries_succeeded", "deliveries_failed"]  # fmt: skip

STATS_SQL = f"""
SELECT hour >= %(hour_since)s AS recent, {", ".join(f"sum({column})" for column in SUMMED)}, max(duration_ms_max)
FROM {SubscriptionHealthHour._meta.db_table}
WHERE subscription_id = %(subscription)s AND hour >= %(day_since)s
GROUP BY 1
"""

LAST_SQL = f"""
SELECT s.last_success_at, f.last_failure_at, f.last_failure_status_code, f.last_failure_reason
FROM (SELECT max(last_success_at) AS last_success_at FROM {SubscriptionHealthHour._meta.db_table}
      WHERE subscription_id = %(subscription)s AND hour >= %(kept_since)s) AS s
LEFT JOIN LATERAL (
    SELECT last_failure_at, last_failure_status_code, last_failure_reason FROM {SubscriptionHealthHour._meta.db_table}
    WHERE subscription_id = %(subscription)s AND hour >= %(kept_since)s AND last_failure_at IS NOT NULL
    ORDER BY last_failure_at DESC LIMIT 1
) AS f ON true
"""


@dataclass(frozen=True)
class Window:
    """A window's totals: ``buckets`` are the cumulative histogram counts, in ``DURATION_BUCKETS_MS`` order."""

    since: datetime
    attempts: int = 0
    attempts_failed: int = 0
    buckets: tuple[int, ...] = (0,) * len(DURATION_BUCKETS_MS)
    longest_ms: int = 0
    succeeded: int = 0
    failed: int = 0

    def plus(self, other: "Window") -> "Window":
        return Window(
            since=min(self.since, other.since),
            attempts=self.attempts + other.attempts,
            attempts_failed=self.attempts_failed + other.attempts_failed,
            buckets=tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            longest_ms=max(self.longest_ms, other.longest_ms),
            succeeded=self.succeeded + other.succeeded,
            failed=self.failed + other.failed,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "deliveries": {"succeeded": self.succeeded, "failed": self.failed},
            "attempts": {"total": self.attempts, "failed": self.attempts_failed},
            "duration_ms": {
                "p50": duration_quantile(0.5, self.buckets, total=self.attempts, longest_ms=self.longest_ms),
                "p95": duration_quantile(0.95, self.buckets, total=self.attempts, longest_ms=self.longest_ms),
            },
        }


def duration_quantile(q: float, buckets: tuple[int, ...], *, total: int, longest_ms: int) -> int | None:
    """The ``q`` quantile of attempt durations, interpolated linearly inside the histogram bucket that holds it
    (above the last edge, up to the longest attempt); ``None`` without attempts."""
    if total <= 0:
        return None
    rank = q * total
    lower_edge, lower_count = 0, 0
    for edge, count in [*zip(DURATION_BUCKETS_MS, buckets, strict=True), (max(longest_ms, 0), total)]:
        if count >= rank and count > lower_count:
            estimate = lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
            return min(round(estimate), longest_ms)
        lower_edge, lower_count = max(edge, lower_edge), count
    return longest_ms


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def subscription_stats(*, subscription_id: Any, now: datetime) -> dict[str, Any]:
    """The last hour's and the last day's counts and durations, and the last success and failure.

    Hours are whole: ``last_hour`` covers the previous clock hour and the current one, ``last_day`` the 24 hours
    before the current one and it (each answer says ``since``). Two statements over at most ``HEALTH_HOURS_KEPT``
    hours of one subscription's rows, found by primary key."""
    hour_since = hour_start(now) - timedelta(hours=1)
    day_since = hour_start(now) - timedelta(hours=24)
    recent, older = Window(since=hour_since), Window(since=day_since)
    params = {
        "subscription": subscription_id, "hour_since": hour_since, "day_since": day_since,
        "kept_since": hour_start(now) - timedelta(hours=HEALTH_HOURS_KEPT),
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(STATS_SQL, params)
        for is_recent, attempts, attempts_failed, *rest in cursor.fetchall():
            *buckets, succeeded, failed, longest = rest
            window = Window(
                since=hour_since if is_recent else day_since, attempts=int(attempts),
                attempts_failed=int(attempts_failed), buckets=tuple(int(b) for b in buckets),
                longest_ms=int(longest), succeeded=int(succeeded), failed=int(failed),
            )  # fmt: skip
            if is_recent:
                recent = window
            else:
                older = window
        cursor.execute(LAST_SQL, params)
        last_success_at, failed_at, status_code, reason = cursor.fetchone() or (None, None, None, None)
    failure = None if failed_at is None else {"at": failed_at, "status_code": status_code, "reason": reason}
    return {
        "last_hour": recent.as_json(),
        "last_day": older.plus(recent).as_json(),
        "last_success_at": last_success_at,
        "last_failure": failure,
    }


def subscription_health_report(subscription: Subscription, *, now: datetime) -> dict[str, Any]:
    """``GET …/stats``: the counts of ``subscription_stats()``, the run of failures and how near it is to
    disabling the subscription, and its probe."""
    threshold = failing_notice_threshold()
    failing = subscription.active and subscription.consecutive_failures > 0
    return {
        "subscription_id": subscription.id,
        "generated_at": now,
        **subscription_stats(subscription_id=subscription.id, now=now),
        "health": {
            "active": subscription.active,
            "consecutive_failures": subscription.consecutive_failures,
            "failing_since": subscription.failing_since,
            "failing_notice_after": threshold,
            "failing_notice_at": subscription.failing_notified_at,
            "disable_after_failures": settings.ESL_DISABLE_AFTER_FAILURES,
            "disables_at_earliest": disables_at_earliest(subscription) if failing else None,
            "disabling_near": failing and subscription.consecutive_failures >= threshold,
            "disabled_at": subscription.disabled_at,
            "disabled_reason": subscription.disabled_reason,
        },
        "probe": {
            "enabled": subscription.probe_when_disabled,
            "next_at": subscription.probe_next_at,
            "sent": subscription.probes_sent,
        },
    }


def health_hours_purge(*, now: datetime) -> int:
    """Deletes the hours older than ``HEALTH_HOURS_KEPT`` (retention's pass); returns how many rows went."""
    cutoff = hour_start(now) - timedelta(hours=HEALTH_HOURS_KEPT)
    deleted, _ = SubscriptionHealthHour.objects.filter(hour__lt=cutoff).delete()
    return deleted
