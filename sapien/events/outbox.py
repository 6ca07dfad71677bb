"""``record_event()``: the only way an event comes to exist.

It must run inside the transaction of the change it reports (signals do, since
every write path is atomic): the event and its outbox entry, inserted by one
statement, then commit or roll back with it;
with ``ESL_ASSERT_TRANSACTIONS`` a call outside one raises. After the commit one
``NOTIFY`` per transaction wakes the relay; it never runs inside the transaction,
and a lost one only costs the relay's poll interval.

Only an event that may have a receiver wakes the relay: one addressed to a
subscription, or of an organization with an active subscription (the same
statement asks; the subscriptions app says how, ``receivable_when()``). The others
wait for the relay's next poll, at most ``ESL_RELAY_POLL_SECONDS``, to be counted
against the quota and leave the outbox: an organization without subscriptions
costs the relay one pass a second, not one per change.
"""

import threading
import uuid
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sapien.core import tracing
from sapien.core.context import current_context
from sapien.core.prepared import prepared_cursor
from sapien.core.transactions import assert_in_transaction
from sapien.events.catalog import EVENT_TYPES
from sapien.events.envelope import build_envelope, to_json
from sapien.events.models import Event, OutboxEntry
from sapien.events.ordering import ordering_key

OUTBOX_CHANNEL = "sapien_outbox"


def record_sql(receivable: str) -> str:
    """The event and its outbox entry in one round trip, returning whether the event may have a receiver
    (``receivable``, SQL on the statement's parameters). The entry carries what fan-out needs, so the relay never
    reads (or rewrites) the event row."""
    return f"""
WITH event AS (
    INSERT INTO {Event._meta.db_table} (id, organization_id, type, body, created_at, recipient_id, traceparent)
    VALUES (%(id)s, %(organization_id)s, %(type)s, %(body)s, %(created_at)s, %(recipient_id)s, %(traceparent)s)
)
INSERT INTO {OutboxEntry._meta.db_table} (created_at, event_id, organization_id, type, recipient_id, ordering_key)
VALUES (%(created_at)s, %(id)s, %(organization_id)s, %(type)s, %(recipient_id)s, %(ordering_key)s)
RETURNING recipient_id IS NOT NULL OR ({receivable})
"""


# Until an app says who receives events (receivable_when), every event may have a receiver.
RECORD_SQL = record_sql("true")


def receivable_when(condition: str) -> None:
    """Sets the SQL, on ``RECORD_SQL``'s parameters (``%(organization_id)s``, ``%(type)s``...), that is true when an
    event not addressed to a subscription may have a receiver; called once, by the app that owns the receivers."""
    global RECORD_SQL
    RECORD_SQL = record_sql(condition)


def notify_relay() -> None:
    """Wakes the relay. Must not run inside the change's transaction (it would serialize commits)."""
    with connection.cursor() as cursor:
        cursor.execute(f"NOTIFY {OUTBOX_CHANNEL}")


class _Commits(threading.local):
    """This thread's commits that recorded events, numbered: the next one's number, and the last one woken for."""

    upcoming = 0
    woken = -1


_commits = _Commits()


def _wake_relay_after_commit() -> None:
    """Wakes the relay once after the current transaction commits, however many events it recorded.

    Every event registers a callback with the number of the commit it awaits; the first to run after
    that commit notifies and moves the number on, so its siblings find their commit already woken for.
    A rolled-back transaction runs none, and the next one awaits the same number.
    """
    commit = _commits.upcoming

    def wake_relay_once() -> None:
        if commit == _commits.woken:
            return
        _commits.woken, _commits.upcoming = commit, commit + 1
        notify_relay()

    transaction.on_commit(wake_relay_once, robust=True)


def record_event(
    *,
    organization_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    changes: dict[str, Any] | None = None,
    recipient_id: uuid.UUID | None = None,
) -> Event | None:
    """Inserts one event in the seed-001 envelope; ``None`` when ``ESL_ENABLED`` is off."""
    if not settings.ESL_ENABLED:
        return None
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {event_type!r}")
    event_id = uuid.uuid4()
    occurred_at = timezone.now()
    envelope = build_envelope(
        event_id=event_id,
        event_type=event_type,
        organization_id=organization_id,
        occurred_at=occurred_at,
        data=data,
        context=current_context(),
        changes=changes,
    )
    return record_prebuilt_event(
        event_id=event_id,
        organization_id=organization_id,
        event_type=event_type,
        body=envelope,
        occurred_at=occurred_at,
        recipient_id=recipient_id,
    )


def record_prebuilt_event(
    *,
    event_id: uuid.UUID,
    organization_id: uuid.UUID,
    event_type: str,
    body: dict[str, Any],
    occurred_at: Any = None,
    recipient_id: uuid.UUID | None = None,
) -> Event | None:
    """Inserts an event whose body another schema dictates (``user.availability.update``).

    The event keeps the trace context it was recorded in (``sapien.core.tracing``): with tracing on, the span of
    this write, so that its deliveries' attempts continue that trace; off, the request's valid ``traceparent``.
    """
    assert_in_transaction("record_event")
    if not settings.ESL_ENABLED:
        return None
    event = Event(
        id=event_id,
        organization_id=organization_id,
        type=event_type,
        body=to_json(body),
        created_at=occurred_at or timezone.now(),
        recipient_id=recipient_id,
    )
    span = tracing.span("sapien.outbox.record", {"sapien.event.id": str(event_id), "sapien.event.type": event_type})
    with span, prepared_cursor() as cursor:
        event.traceparent = tracing.current_traceparent()  # this write's span, when tracing is on
        cursor.execute(
            RECORD_SQL,
            {"id": event.id, "organization_id": event.organization_id, "type": event.type, "body": event.body,
             "created_at": event.created_at, "recipient_id": event.recipient_id, "traceparent": event.traceparent,
             "ordering_key": ordering_key(event_type, body.get("data"))},
        )  # fmt: skip
        (receivable,) = cursor.fetchone()
    event._state.adding = False
    event._state.db = connection.alias
    if receivable:
        _wake_relay_after_commit()
    return event
