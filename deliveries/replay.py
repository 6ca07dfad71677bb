"""Replaying a time range of events to one subscription: a new attempt chain for each, now.

Only the events the subscription would receive today: its event types and its payload filter as they are now.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from deliveries.models import DeliveryStatus
from deliveries.new_deliveries import new_deliveries_sql
from deliveries.wakeups import wakeups_for
from sapien.events.catalog import patterns_match_sql
from sapien.events.ordering import ordering_key_sql
from sapien.events.selectors import body_as_jsonb_sql, retention_start
from sapien.events.wakeups import DELIVER_DUE, WakeUp, wakeup_request
from subscriptions.models import Subscription
from subscriptions.payload_filter import filter_passes_sql

CANDIDATES = """
FROM events_event e
LEFT JOIN deliveries_delivery d
    ON d.event_id = e.id AND d.subscription_id = %(subscription)s AND d.event_created_at = e.created_at
WHERE e.organization_id = %(organization)s
  AND e.created_at >= %(since)s AND e.created_at < %(until)s AND e.created_at >= %(retention)s
  AND (e.recipient_id IS NULL OR e.recipient_id = %(subscription)s)
  AND (e.recipient_id IS NOT NULL OR {matches})
  AND (e.recipient_id IS NOT NULL OR {filter_passes})
  AND (%(status)s::text IS NULL OR d.status = %(status)s::text)
""".format(
    matches=patterns_match_sql("%(patterns)s::text[]", "e.type"),
    # The subscription's payload filter as it is now, as the relay would apply it (subscriptions/payload_filter.py).
    filter_passes=filter_passes_sql(body_jsonb=body_as_jsonb_sql("e.body"), payload_filter="%(filter)s::jsonb"),
)

COUNT_SQL = "SELECT count(*) " + CANDIDATES

# A delivery the replay makes anew gets its event's ordering key when the subscription is ordered; one that
# existed keeps its own. Either way it rejoins its key at its event's place (deliveries/ordering.py).
REPLAY_SQL = (
    new_deliveries_sql(
        event="e",
        subscription_id="%(subscription)s",
        due_at="now()",
        ordering_key=f"CASE WHEN %(ordered)s THEN {ordering_key_sql('e.type', 'e.body')} END",
    )
    + CANDIDATES
    + f"""
ON CONFLICT (event_id, subscription_id, event_created_at) DO UPDATE
SET status = '{DeliveryStatus.PENDING}', attempt_count = 0, next_attempt_at = now(),
    claim_token = NULL, claimed_until = NULL, completed_at = NULL, updated_at = now()
"""
)


@dataclass(frozen=True)
class ReplayResult:
    events: int
    dry_run: bool


def events_replay(
    *, subscription: Subscription, since: datetime, until: datetime, status: str | None = None, dry_run: bool = False
) -> ReplayResult:
    """Redelivers (or, with ``dry_run``, counts) the subscription's events of ``[since, until)`` still retained."""
    params: dict[str, Any] = {
        "subscription": subscription.id, "organization": subscription.organization_id, "since": since,
        "until": until, "retention": retention_start(), "patterns": subscription.events, "status": status,
        "filter": None if subscription.filter is None else json.dumps(subscription.filter),
        "ordered": subscription.ordered,
    }  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        if dry_run:
            cursor.execute(COUNT_SQL, params)
            row = cursor.fetchone()
            return ReplayResult(events=int(row[0]) if row else 0, dry_run=True)
        cursor.execute(REPLAY_SQL, params)
        replayed = cursor.rowcount
        if replayed:
            # Through the relay (sapien/events/wakeups.py): this runs in the web process.
            transaction.on_commit(lambda: wakeup_request(WakeUp(DELIVER_DUE, count=wakeups_for(replayed))))
    return ReplayResult(events=replayed, dry_run=False)
