"""Reading the event history (the retention window)."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from sapien.events.catalog import patterns_match_sql
from sapien.events.models import Event


def retention_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(hours=settings.ESL_RETENTION_HOURS)


def events_of(organization: Any) -> QuerySet[Event]:
    """The organization's retained events, newest first: the history's cursor order (event_org_created_idx)."""
    return Event.objects.filter(organization=organization, created_at__gte=retention_start()).order_by(
        "-created_at", "-id"
    )


MATCHING_COUNT_SQL = """
SELECT count(*) FROM events_event e
WHERE e.organization_id = %(organization)s AND e.recipient_id IS NULL
  AND e.created_at >= %(since)s AND e.created_at < %(until)s AND e.created_at >= %(retention)s
  AND {matches}
""".format(matches=patterns_match_sql("%(patterns)s::text[]", "e.type"))


def count_matching_events(*, organization_id: Any, patterns: list[str], since: datetime, until: datetime) -> int:
    """How many events of a time range a subscription with ``patterns`` would have received."""
    with connection.cursor() as cursor:
        cursor.execute(
            MATCHING_COUNT_SQL,
            {"organization": organization_id, "patterns": patterns, "since": since, "until": until,
             "retention": retention_start()},
        )  # fmt: skip
        row = cursor.fetchone()
    return int(row[0]) if row else 0


OUTBOX_STATE_SQL = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM events_event WHERE relayed_at IS NULL LIMIT %(cap)s) AS unrelayed),
       coalesce((SELECT extract(epoch FROM now() - created_at) FROM events_event WHERE relayed_at IS NULL
                 ORDER BY created_at LIMIT 1), 0)
"""  # both on event_outbox_idx (unrelayed rows only): never the relayed history


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
