"""Connections: whether a user is there. OAuth sessions and presence connections, and the offline debounce.

The first live connection makes the user online; when the last one closes, the
user goes offline only after ``PRESENCE_OFFLINE_DEBOUNCE`` without a new one
(``offline_debounce_start``, then ``offline_finalize`` from the timers).
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from availability import events
from availability.models import Activity, Connection, Trigger, UserAvailability
from availability.state import locked_existing_state, locked_state, organization_of, recompute
from availability.wakeups import wake_at
from sapien.core.models import User

ACTIVE_ACTIVITIES = {Activity.ACTIVE, Activity.TYPING}
SESSION_PREFIX = "oauth-token:"


def session_connection_id(token_id: int) -> str:
    """The ``connection_id`` of the OAuth session of an access token (a prefix heartbeats may not use)."""
    return f"{SESSION_PREFIX}{token_id}"


def activity_throttle() -> timedelta:
    """How often a user's requests refresh their activity: often enough to see idleness on time."""
    return timedelta(seconds=min(30.0, settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS / 4))


def connection_open_or_refresh(
    *,
    user: User,
    kind: str,
    connection_id: str,
    device_type: str = "api",
    activity: str = Activity.ACTIVE,
    location: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
    expires_at: datetime | None = None,
    source: str,
) -> tuple[UserAvailability, bool]:
    """Opens a connection, or refreshes it (a heartbeat). Returns the state and whether it was new.

    A keep-alive proves the connection only: the idle timer moves on ``active``
    or ``typing`` activity, never on the heartbeat itself.
    """
    now = timezone.now()
    with transaction.atomic():
        state = locked_state(user)
        is_active = activity in ACTIVE_ACTIVITIES
        connection, created = Connection.objects.get_or_create(
            user_id=user.pk, connection_id=connection_id,
            defaults={"organization_id": organization_of(user), "kind": kind, "device_type": device_type,
                      "activity": activity, "location": location, "ip_address": ip_address,
                      "user_agent": user_agent, "opened_at": now, "last_seen_at": now,
                      "last_activity_at": now if is_active else None, "expires_at": expires_at},
        )  # fmt: skip
        context = {
            "session_id": str(connection.session_id), "device_type": device_type,
            "ip_address": ip_address, "user_agent": user_agent,
        }  # fmt: skip
        if created:
            came_online = not state.online
            state.offline_pending_since = None
            state.offline_reason = ""
            if came_online:
                events.record_user_online(
                    state, {"device_type": device_type, "user_agent": user_agent, "location": location,
                            "connection_id": connection_id}, now=now,
                )  # fmt: skip
            recompute(
                state, trigger=Trigger.SESSION_START, source=source, actor_id=str(user.pk), context=context, now=now
            )
            return state, True
        connection.last_seen_at = now
        connection.activity = activity
        connection.device_type = device_type
        if location:
            connection.location = location
        if is_active:
            connection.last_activity_at = now
        connection.save(update_fields=["last_seen_at", "activity", "device_type", "location", "last_activity_at"])
        state.last_seen_at = now
        state.save(update_fields=["last_seen_at"])
        if is_active and state.idle:
            recompute(
                state, trigger=Trigger.ACTIVITY_RESUME, source=source, actor_id=str(user.pk), context=context, now=now
            )
        return state, False


@transaction.atomic
def connection_close(*, user_id: Any, connection_id: str, reason: str, kind: str | None = None) -> bool:
    """Deletes one connection (of ``kind``, when given) and starts the offline debounce if it was the last.

    Returns whether there was such a connection.
    """
    connections = Connection.objects.filter(user_id=user_id, connection_id=connection_id)
    deleted, _ = (connections.filter(kind=kind) if kind else connections).delete()
    if deleted:
        offline_debounce_start(user_id=user_id, reason=reason)
    return bool(deleted)


def offline_debounce_start(*, user_id: Any, reason: str, now: datetime | None = None) -> None:
    """After the caller deleted connections: starts the offline debounce if the user has none left.

    Must run inside the transaction that deleted them; takes the user's row lock (never creating the row).
    """
    now = now or timezone.now()
    state = locked_existing_state(user_id)
    if state is None or not state.online or Connection.objects.filter(user_id=user_id).exists():
        return
    if state.offline_pending_since is None:
        state.offline_pending_since = now
        state.offline_reason = reason
        state.save(update_fields=["offline_pending_since", "offline_reason"])
    debounce = timedelta(seconds=settings.PRESENCE_OFFLINE_DEBOUNCE_SECONDS)
    if debounce <= timedelta(0):
        offline_finalize(state, now=now)
    else:
        due = now + debounce
        transaction.on_commit(lambda: wake_at(due))


def offline_finalize(state: UserAvailability, *, now: datetime) -> None:
    """The debounce ran out with no new connection: the user goes offline. The caller holds the lock."""
    if Connection.objects.filter(user_id=state.user_id).exists():
        state.offline_pending_since = None
        state.save(update_fields=["offline_pending_since"])
        return
    reason = state.offline_reason or "disconnect"
    state.offline_pending_since = None
    state.offline_reason = ""
    events.record_user_offline(state, reason=reason, last_seen=state.last_seen_at, now=now)
    source = {"logout": "oauth2_revoke_endpoint", "timeout": "presence_monitor"}.get(reason, "presence_disconnect")
    recompute(state, trigger=Trigger.SESSION_END, source=source, now=now)


def session_activity_touch(*, user: User, token_id: int) -> None:
    """A request made with the user's token is activity. One cheap UPDATE, at most every few seconds."""
    now = timezone.now()
    touched = Connection.objects.filter(
        user_id=user.pk, connection_id=session_connection_id(token_id), last_activity_at__lt=now - activity_throttle()
    ).update(last_seen_at=now, last_activity_at=now)
    if touched:
        with transaction.atomic():
            state = locked_state(user)
            if state.idle:
                recompute(state, trigger=Trigger.ACTIVITY_RESUME, source="api", actor_id=str(user.pk), now=now)
