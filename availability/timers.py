"""Everything in availability that happens because time passed, run every second (and on wake-ups).

Each step finds what is due with one query and handles each user in a short
transaction holding that user's row lock, so ticks from several workers and
concurrent API writes serialize per user and never double-handle.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from availability import events
from availability.models import (
    DECLARATION_TRIGGER,
    AvailabilityProfile,
    Connection,
    ConnectionKind,
    Declaration,
    Trigger,
    UserAvailability,
)
from availability.services.connections import offline_debounce_start, offline_finalize
from availability.state import locked_state, recompute, schedule_reevaluate, schedule_window
from sapien.core.models import User

EMIT_BATCH = 200


def run_due_timers(now: datetime | None = None) -> None:
    now = now or timezone.now()
    expire_declarations(now)
    expire_sessions(now)
    drop_stale_connections(now)
    finalize_offline(now)
    detect_idle(now)
    apply_schedules(now)
    emit_due_events(now)


def _users(rows: Sequence[tuple[Any, Any]]) -> list[User]:
    return [User(pk=user_id, organization_id=organization_id) for user_id, organization_id in dict(rows).items()]


def expire_declarations(now: datetime) -> None:
    """A declaration whose time is up is removed and the status recomputed, naming its trigger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT user_id, organization_id, kind FROM availability_declaration WHERE expires_at <= %s", [now]
        )
        due = cursor.fetchall()
    for user_id, organization_id, kind in due:
        with transaction.atomic():
            state = locked_state(User(pk=user_id, organization_id=organization_id))
            deleted, _ = Declaration.objects.filter(user_id=user_id, kind=kind, expires_at__lte=now).delete()
            if deleted:
                recompute(state, trigger=DECLARATION_TRIGGER[kind], source="expiry", now=now)


def expire_sessions(now: datetime) -> None:
    """An OAuth session ends when its token expires."""
    _close(Connection.objects.filter(kind=ConnectionKind.SESSION, expires_at__lte=now), reason="timeout", now=now)


def drop_stale_connections(now: datetime) -> None:
    """Silent presence connections are dropped. The cutoff is part of the delete, so a heartbeat racing it wins."""
    cutoff = now - timedelta(seconds=settings.PRESENCE_STALE_THRESHOLD_SECONDS)
    _close(Connection.objects.filter(kind=ConnectionKind.PRESENCE, last_seen_at__lte=cutoff), reason="timeout", now=now)


def _close(queryset, *, reason: str, now: datetime) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            sql, params = queryset.values("id").query.sql_with_params()
            cursor.execute(
                f"DELETE FROM availability_connection WHERE id IN ({sql}) RETURNING user_id, organization_id", params
            )
            rows = cursor.fetchall()
        for user in _users(rows):
            offline_debounce_start(user_id=user.pk, reason=reason, now=now)


def finalize_offline(now: datetime) -> None:
    cutoff = now - timedelta(seconds=settings.PRESENCE_OFFLINE_DEBOUNCE_SECONDS)
    due = UserAvailability.objects.filter(offline_pending_since__lte=cutoff).values_list("user_id", "organization_id")
    for user in _users(list(due)):
        with transaction.atomic():
            state = locked_state(user)
            if state.offline_pending_since is not None and state.offline_pending_since <= cutoff:
                offline_finalize(state, now=now)


def detect_idle(now: datetime) -> None:
    """Online users with no activity for ``AVAILABILITY_IDLE_THRESHOLD`` become idle (``idle_timeout``)."""
    cutoff = now - timedelta(seconds=settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS)
    latest = (
        Connection.objects.filter(user__availability__online=True, user__availability__idle=False)
        .values("user_id", "organization_id")
        .annotate(last_activity=Max("last_activity_at"))
    )
    due = [
        (row["user_id"], row["organization_id"])
        for row in latest
        if row["last_activity"] is None or row["last_activity"] <= cutoff
    ]
    for user in _users(due):
        with transaction.atomic():
            state = locked_state(user)
            if not state.idle:
                recompute(state, trigger=Trigger.IDLE_TIMEOUT, source="presence_monitor", now=now)


def apply_schedules(now: datetime) -> None:
    """Schedule windows start and end on time; each transition is recorded as ``availability.schedule.triggered``."""
    profiles = AvailabilityProfile.objects.filter(active=True).values_list("user_id", "organization_id").distinct()
    for user in _users(list(profiles)):
        window, _ = schedule_window(user.pk, now)
        current = window.status if window else ""
        known = UserAvailability.objects.filter(user_id=user.pk).values_list("schedule_status", flat=True).first()
        if known == current:
            continue
        with transaction.atomic():
            schedule_reevaluate(locked_state(user), now=now)


def emit_due_events(now: datetime) -> int:
    """Sends the consolidated event of every user whose next event is due. Returns how many were recorded."""
    recorded = 0
    while True:
        with transaction.atomic():
            due = list(
                UserAvailability.objects.select_for_update(skip_locked=True)
                .filter(event_due_at__lte=now)
                .order_by("event_due_at")[:EMIT_BATCH]
            )
            for state in due:
                state.event_due_at = None
                if (state.status, state.custom_message, state.expires_at) != (
                    state.emitted_status, state.emitted_message, state.emitted_expires_at
                ):  # fmt: skip
                    events.record_availability_events(state)
                    state.emitted_status = state.status
                    state.emitted_message = state.custom_message
                    state.emitted_expires_at = state.expires_at
                    state.last_event_at = now
                    recorded += 1
                state.save(
                    update_fields=[
                        "event_due_at",
                        "emitted_status",
                        "emitted_message",
                        "emitted_expires_at",
                        "last_event_at",
                    ]
                )
        if len(due) < EMIT_BATCH:
            return recorded
