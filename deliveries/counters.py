"""Counters that only go up: counted in the very statements that record outcomes and fan events out.

The statement that records a batch's outcomes (``claims.RECORD_SQL``) and the relay's (``relay.RELAY_SQL``) each
end with a CTE from this module that adds what they did to a row of ``deliveries_outcomecounter`` or
``deliveries_relaycounter``: in the same statement, so that a count commits if and only if what it counts does,
whichever process on whichever host did it. No purge touches those rows, so the totals survive retention and
restarts alike. ``/metrics`` sums them (``counter_totals()``).

Each statement adds to one of ``COUNTER_SHARDS`` rows, picked at random, so that workers recording at the same
time seldom wait for one another's row lock (held until their transaction commits). A statement locks its counter
rows last (its CTE reads the rows the statement wrote) and in one order (by organization), so two statements
cannot deadlock over them; relays and workers never share a row.
"""

import random
from typing import Any

from django.db import connection, models

from deliveries.models import ALL_ORGANIZATIONS, DeliveryStatus, OutcomeCounter, RelayCounter

COUNTER_SHARDS = 16

# Upper edges of the attempt duration histogram's buckets, in ms (the columns duration_le_<edge>ms).
DURATION_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

# The class of a receiver's answer, as an attempt counter column's SQL filter over ``status_code``.
STATUS_CLASSES = {
    "2xx": "status_code BETWEEN 200 AND 299",
    "3xx": "status_code BETWEEN 300 AND 399",
    "4xx": "status_code BETWEEN 400 AND 499",
    "5xx": "status_code BETWEEN 500 AND 599",
    "other": "status_code NOT BETWEEN 200 AND 599",
    "error": "status_code IS NULL",
}

# Column → aggregate over the rows of ``outcome_counts_sql()``: an attempt (``duration_ms`` set) or a delivery
# whose recorded status is ``finished``.
# Shared with the per-subscription health hours (``deliveries/health.py``): the cumulative duration histogram, and
# the deliveries that reached a final status.
DURATION_HISTOGRAM_COUNTS = {
    f"duration_le_{edge}ms": f"count(*) FILTER (WHERE duration_ms <= {edge})" for edge in DURATION_BUCKETS_MS
}
FINAL_STATUS_COUNTS = {
    "deliveries_succeeded": f"count(*) FILTER (WHERE finished = '{DeliveryStatus.SUCCEEDED}')",
    "deliveries_failed": f"count(*) FILTER (WHERE finished = '{DeliveryStatus.FAILED}')",
}
OUTCOME_COUNTS = {
    **{f"attempts_{name}": f"count(*) FILTER (WHERE duration_ms IS NOT NULL AND {where})"
       for name, where in STATUS_CLASSES.items()},
    **DURATION_HISTOGRAM_COUNTS,
    "duration_ms_sum": "coalesce(sum(duration_ms), 0)",
    **FINAL_STATUS_COUNTS,
}  # fmt: skip

# Column → aggregate over the rows of ``relay_counts_sql()``: a relayed event or a delivery created.
RELAY_COUNTS = {
    "events_relayed": "count(*) FILTER (WHERE event)",
    "events_over_quota": "count(*) FILTER (WHERE event AND over_quota)",
    "deliveries_created": "count(*) FILTER (WHERE NOT event)",
}


def counted_organization_sql(organization_id: str) -> str:
    """SQL for the organization a count is kept under: its own with ``%(per_organization)s``, else every one's."""
    return f"CASE WHEN %(per_organization)s THEN {organization_id} ELSE '{ALL_ORGANIZATIONS}'::uuid END"


def add_counts_sql(model: type[models.Model], counts: dict[str, str], rows: str) -> str:
    """``INSERT … ON CONFLICT DO UPDATE`` adding ``counts`` (column → aggregate over ``rows``, which have an
    ``organization_id`` column) to the row of shard ``%(counter_shard)s``, one per organization counted.

    Adds nothing, and locks nothing, when ``rows`` is empty."""
    table = model._meta.db_table
    columns = ", ".join(counts)
    added = ",\n        ".join(f"{column} = c.{column} + EXCLUDED.{column}" for column in counts)
    aggregates = ",\n           ".join(counts.values())
    return f"""INSERT INTO {table} AS c (organization_id, shard, {columns})
    SELECT organization_id, %(counter_shard)s, {aggregates}
    FROM ({rows}) AS counted
    GROUP BY organization_id
    ORDER BY organization_id  -- one lock order for every statement
    ON CONFLICT (organization_id, shard) DO UPDATE SET
        {added}"""


def outcome_counts_sql(*, sent: str, recorded: str) -> str:
    """The record statement's counting: every attempt of ``sent`` (inserted whether or not the claim still held;
    rows with ``organization_id``, ``status_code`` and ``duration_ms``), and the deliveries of ``recorded`` (the
    rows the claim updated) that reached a final status."""
    organization = counted_organization_sql("organization_id")
    return add_counts_sql(
        OutcomeCounter,
        OUTCOME_COUNTS,
        f"""
        SELECT {organization} AS organization_id, status_code, duration_ms, NULL AS finished FROM {sent}
        UNION ALL
        SELECT {organization}, NULL, NULL, status FROM {recorded}
        WHERE status <> '{DeliveryStatus.PENDING}'
    """,
    )


def expiry_counts_sql(*, expired: str) -> str:
    """Retention's counting: the deliveries of ``expired`` (with their ``organization_id``) that it marked failed
    because their event left the retention window while they were still pending."""
    organization = counted_organization_sql("organization_id")
    counts = {**dict.fromkeys(OUTCOME_COUNTS, "0"), "deliveries_failed": "count(*)"}
    return add_counts_sql(OutcomeCounter, counts, f"SELECT {organization} AS organization_id FROM {expired}")


def relay_counts_sql(*, events: str, deliveries: str) -> str:
    """The relay statement's counting: the events of ``events`` (with ``not_before`` set when past their quota)
    and the deliveries of ``deliveries`` (the rows inserted), each with its ``organization_id``."""
    organization = counted_organization_sql("organization_id")
    return add_counts_sql(
        RelayCounter,
        RELAY_COUNTS,
        f"""
        SELECT {organization} AS organization_id, true AS event, not_before IS NOT NULL AS over_quota
        FROM {events}
        UNION ALL
        SELECT {organization}, false, false FROM {deliveries}
    """,
    )


def counter_parameters(*, per_organization: bool) -> dict[str, Any]:
    """The statement parameters the counting CTEs read (beside the record statement's own arrays). The shard is
    random: ``random`` reseeds itself in a forked child, so Celery's worker processes don't pick in step."""
    return {"counter_shard": random.randrange(COUNTER_SHARDS), "per_organization": per_organization}


def counter_totals(model: type[models.Model], *, per_organization: bool) -> dict[str | None, dict[str, int]]:
    """Each counter column summed over the shards: by organization id, or under ``None`` for all of them.

    Rows counted while ``ESL_METRICS_PER_ORGANIZATION`` was off are under ``""`` when it is on."""
    columns = [field.attname for field in model._meta.concrete_fields][2:]  # after organization_id and shard
    sums = ", ".join(f"coalesce(sum({column}), 0)" for column in columns)
    with connection.cursor() as cursor:
        if per_organization:
            cursor.execute(f"SELECT organization_id, {sums} FROM {model._meta.db_table} GROUP BY organization_id")
        else:
            cursor.execute(f"SELECT NULL, {sums} FROM {model._meta.db_table}")
        rows = cursor.fetchall()
    totals: dict[str | None, dict[str, int]] = {}
    for organization_id, *values in rows:
        key = None if not per_organization else "" if organization_id == ALL_ORGANIZATIONS else str(organization_id)
        totals[key] = {column: int(value) for column, value in zip(columns, values, strict=True)}
    return totals
