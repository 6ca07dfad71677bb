"""Reading the event history (the retention window)."""

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from sapien.events.catalog import patterns_match_sql
from sapien.events.models import Event, OutboxEntry


def retention_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(hours=settings.ESL_RETENTION_HOURS)


def events_of(organization: Any) -> QuerySet[Event]:
    """The organization's retained events, newest first: the history's cursor order (event_org_created_idx)."""
    return Event.objects.filter(organization=organization, created_at__gte=retention_start()).order_by(
        "-created_at", "-id"
    )


def body_as_jsonb_sql(body: str) -> str:
    """SQL: an event's JSON text ``body`` as ``jsonb``, or NULL when it has the text ``\\u0000``: ``jsonb``
    refuses NUL, and one such event must never fail a whole statement (the relay's batch)."""
    return f"CASE WHEN strpos({body}, '\\u0000') = 0 THEN ({body})::jsonb END"


MATCHING_COUNT_SQL = """
SELECT count(*) FROM events_event e
WHERE e.organization_id = %(organization)s AND e.recipient_id IS NULL
  AND e.created_at >= %(since)s AND e.created_at < %(until)s AND e.created_at >= %(retention)s
  AND {matches}
  AND (%(contains)s::jsonb IS NULL OR {body} @> %(contains)s::jsonb)
""".format(matches=patterns_match_sql("%(patterns)s::text[]", "e.type"), body=body_as_jsonb_sql("e.body"))


def count_matching_events(
    *, organization_id: Any, patterns: list[str], since: datetime, until: datetime, contains: Any = None
) -> int:
    """How many events of a time range a subscription with ``patterns`` would have received; with ``contains``
    (a JSON document), only those whose body contains it (``jsonb @>``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            MATCHING_COUNT_SQL,
            {"organization": organization_id, "patterns": patterns, "since": since, "until": until,
             "retention": retention_start(), "contains": None if contains is None else json.dumps(contains)},
        )  # fmt: skip
        row = cursor.fetchone()
    return int(row[0]) if row else 0


OUTBOX_STATE_SQL = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM events_outbox LIMIT %(cap)s) AS unrelayed),
       coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM events_outbox), 0)
"""  # the outbox holds only the backlog: never the relayed history


def with_relayed(events: QuerySet[Event]) -> QuerySet[Event]:
    """``events`` with ``relayed``: false while the event waits in the outbox (one primary-key probe per row)."""
    waiting = OutboxEntry.objects.filter(created_at=OuterRef("created_at"), event_id=OuterRef("id"))
    return events.annotate(relayed=~Exists(waiting))


def outbox_state(*, cap: int | None = None) -> tuple[int, float]:
    """How far the relay is behind: events not yet fanned out (counted up to ``cap``, when given, which bounds
    the cost of a long backlog), and the age in seconds of the oldest."""
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_STATE_SQL, {"cap": cap})  # LIMIT NULL: no limit
        depth, lag = cursor.fetchone() or (0, 0)
    return int(depth), float(lag)


def outbox_health() -> dict[str, float]:
    """The ``outbox`` section of ``GET /health``: ``depth`` (events not yet fanned out) and ``lag_seconds``."""
    depth, lag = outbox_state()
    return {"depth": depth, "lag_seconds": round(lag, 3)}
