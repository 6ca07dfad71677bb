"""Changing a user's availability: declarations, connections, and the recompute they trigger.

Every change locks the user's ``UserAvailability`` row (per-user serialization,
short transactions), changes one layer, and recomputes the status shown from
both layers as they are now. An effective change schedules one consolidated
event: at least 100 ms later and 5 s after the previous one (``timers.emit_due_events``).
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from availability import events
from availability.models import (
    Activity,
    AvailabilityProfile,
    Connection,
    Declaration,
    DeclarationKind,
    Trigger,
    UserAvailability,
)
from availability.rules import Claim, Layers, shown_status, strongest
from availability.schedules import Window, parse_rules, window_at
from availability.wakeups import wake_at
from sapien.core.errors import ApplicationError, Conflict
from sapien.core.models import User
from sapien.events.context import overriding
from sapien.events.envelope import isoformat_z
from sapien.events.outbox import record_event

CONSOLIDATION_WINDOW = timedelta(milliseconds=100)
EVENT_SPACING = timedelta(seconds=5)
ACTIVE_ACTIVITIES = {Activity.ACTIVE, Activity.TYPING}


def organization_of(user: User) -> uuid.UUID:
    """Availability is kept for organization members only (operators without one have none)."""
    if user.organization_id is None:
        raise ValueError(f"User {user.pk} belongs to no organization")
    return user.organization_id


def locked_state(user: User) -> UserAvailability:
    """The user's row, created if missing, locked until the transaction ends. Must run in a transaction."""
    UserAvailability.objects.get_or_create(user_id=user.pk, defaults={"organization_id": organization_of(user)})
    return UserAvailability.objects.select_for_update().get(user_id=user.pk)


def locked_existing_state(user_id: Any) -> UserAvailability | None:
    """Like ``locked_state`` but never creates the row (the user may be being deleted)."""
    return UserAvailability.objects.select_for_update().filter(user_id=user_id).first()


def activity_throttle() -> timedelta:
    """How often a user's requests refresh their activity: often enough to see idleness on time."""
    return timedelta(seconds=min(30.0, settings.AVAILABILITY_IDLE_THRESHOLD / 4))


def schedule_window(user_id: Any, now: datetime) -> tuple[Window | None, uuid.UUID | None]:
    for profile in AvailabilityProfile.objects.filter(user_id=user_id, active=True):
        window = window_at(parse_rules(profile.rules), profile.timezone, now)
        if window is not None:
            return window, profile.id
    return None, None


def recompute(
    state: UserAvailability,
    *,
    trigger: str,
    source: str,
    actor_id: str = "",
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Recomputes the shown status from both layers. The caller holds the row lock. True on an effective change."""
    now = now or timezone.now()
    declarations = {
        declaration.kind: declaration
        for declaration in Declaration.objects.filter(user_id=state.user_id)
        if declaration.expires_at is None or declaration.expires_at > now
    }
    connections = list(Connection.objects.filter(user_id=state.user_id))
    online = bool(connections) or state.offline_pending_since is not None
    activity_times = [c.last_activity_at for c in connections if c.last_activity_at is not None]
    last_activity = max(activity_times, default=None)
    threshold = timedelta(seconds=settings.AVAILABILITY_IDLE_THRESHOLD)
    idle = online and (last_activity is None or now - last_activity >= threshold)
    window, profile_id = schedule_window(state.user_id, now)

    def claim(kind: str) -> Claim | None:
        declaration = declarations.get(kind)
        if declaration is None:
            return None
        return Claim(declaration.status, declaration.custom_message, declaration.expires_at)

    shown = shown_status(
        Layers(
            override=claim(DeclarationKind.SYSTEM_OVERRIDE),
            manual=claim(DeclarationKind.MANUAL),
            online=online,
            schedule_status=window.status if window else None,
            idle=idle,
        )
    )
    state.online = online
    state.idle = idle
    state.schedule_status = window.status if window else ""
    state.profile_id = profile_id if shown.source == "schedule" else None
    if connections:
        state.last_seen_at = max(c.last_seen_at for c in connections)
    expires_at = (
        shown.expires_at
        if isinstance(shown.expires_at, datetime)
        else (window.ends_at if window and shown.source == "schedule" else None)
    )
    changed = (shown.status, shown.custom_message, expires_at) != (state.status, state.custom_message, state.expires_at)
    if changed:
        arrived_together = (
            state.event_due_at is not None
            and state.changed_at is not None
            and now - state.changed_at <= CONSOLIDATION_WINDOW
        )
        if arrived_together and strongest([state.trigger or trigger, trigger]) != trigger:
            # Seed 000's priority decides which of the triggers consolidated together names the event.
            trigger, source, actor_id = state.trigger, state.trigger_source, state.actor_id
        if shown.status != state.status:
            state.previous_status = state.status
            state.changed_at = now
        state.status = shown.status
        state.custom_message = shown.custom_message
        state.expires_at = expires_at
        state.trigger = trigger
        state.trigger_source = source
        state.actor_id = actor_id
        state.event_context = context or {}
        _schedule_event(state, now)
    state.save()
    return changed


def _schedule_event(state: UserAvailability, now: datetime) -> None:
    if state.event_due_at is not None:
        return  # an event is already due: it will carry this latest state
    due = now + CONSOLIDATION_WINDOW
    if state.last_event_at is not None:
        due = max(due, state.last_event_at + EVENT_SPACING)
    state.event_due_at = due
    transaction.on_commit(lambda: wake_at(due))


# --- declarations -------------------------------------------------------------------


def _expiry_in_future(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise ApplicationError(
            "expires_at must be in the future.",
            code="validation_error",
            details={"expires_at": ["Must be in the future."]},
        )


def _refuse_under_override(user: User, now: datetime) -> None:
    """A manual change while an override is in force is a 409 (CONTRACT §7)."""
    override = Declaration.objects.filter(user_id=user.pk, kind=DeclarationKind.SYSTEM_OVERRIDE).first()
    if override is not None and (override.expires_at is None or override.expires_at > now):
        raise Conflict(
            "An administrator's override is in force; your status cannot change until it is lifted.",
            code="override_in_force",
            details={"override_status": override.status, "expires_at": override.expires_at},
        )


@transaction.atomic
def manual_status_set(
    *,
    user: User,
    status: str,
    custom_message: str = "",
    expires_at: datetime | None = None,
    context: dict[str, Any] | None = None,
) -> UserAvailability:
    now = timezone.now()
    _expiry_in_future(expires_at, now)
    state = locked_state(user)
    _refuse_under_override(user, now)
    Declaration.objects.update_or_create(
        user_id=user.pk, kind=DeclarationKind.MANUAL,
        defaults={"organization_id": organization_of(user), "status": status, "custom_message": custom_message,
                  "expires_at": expires_at, "actor_id": str(user.pk)},
    )  # fmt: skip
    recompute(state, trigger=Trigger.MANUAL, source="api", actor_id=str(user.pk), context=context, now=now)
    return state


@transaction.atomic
def manual_status_clear(*, user: User, context: dict[str, Any] | None = None) -> UserAvailability:
    state = locked_state(user)
    _refuse_under_override(user, timezone.now())
    Declaration.objects.filter(user_id=user.pk, kind=DeclarationKind.MANUAL).delete()
    recompute(state, trigger=Trigger.MANUAL, source="api", actor_id=str(user.pk), context=context)
    return state


@transaction.atomic
def declaration_set(
    *,
    user: User,
    kind: str,
    status: str,
    actor_id: str,
    source: str,
    custom_message: str = "",
    expires_at: datetime | None = None,
) -> tuple[UserAvailability, Declaration]:
    """Declares ``kind`` for the user on an operator's behalf (no refusal under an override), and recomputes.

    Takes the user's row lock before it writes the declaration, as every path here does:
    one lock order for the same rows, so no two paths can deadlock on them.
    """
    now = timezone.now()
    _expiry_in_future(expires_at, now)
    state = locked_state(user)
    declaration, _ = Declaration.objects.update_or_create(
        user_id=user.pk, kind=kind,
        defaults={"organization_id": organization_of(user), "status": status, "custom_message": custom_message,
                  "expires_at": expires_at, "actor_id": actor_id},
    )  # fmt: skip
    recompute(state, trigger=kind, source=source, actor_id=actor_id, now=now)
    return state, declaration


@transaction.atomic
def declaration_lift(*, user: User, kind: str, actor_id: str, source: str) -> UserAvailability:
    """Removes the user's ``kind`` declaration, if any, and recomputes; the lock first, like ``declaration_set``."""
    state = locked_state(user)
    Declaration.objects.filter(user_id=user.pk, kind=kind).delete()
    recompute(state, trigger=kind, source=source, actor_id=actor_id)
    return state


def override_set(
    *, user: User, status: str, actor_id: str, custom_message: str = "", expires_at: datetime | None = None
) -> UserAvailability:
    state, _ = declaration_set(
        user=user, kind=DeclarationKind.SYSTEM_OVERRIDE, status=status, actor_id=actor_id, source="api",
        custom_message=custom_message, expires_at=expires_at,
    )  # fmt: skip
    return state


def override_lift(*, user: User, actor_id: str) -> UserAvailability:
    return declaration_lift(user=user, kind=DeclarationKind.SYSTEM_OVERRIDE, actor_id=actor_id, source="api")


# --- connections --------------------------------------------------------------------


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


def connections_closed(*, user_id: Any, reason: str, now: datetime | None = None) -> None:
    """After connections were removed: starts the offline debounce when none is left. Runs in a transaction."""
    now = now or timezone.now()
    state = locked_existing_state(user_id)
    if state is None or not state.online or Connection.objects.filter(user_id=user_id).exists():
        return
    if state.offline_pending_since is None:
        state.offline_pending_since = now
        state.offline_reason = reason
        state.save(update_fields=["offline_pending_since", "offline_reason"])
    debounce = timedelta(seconds=settings.PRESENCE_OFFLINE_DEBOUNCE)
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


@transaction.atomic
def connection_close(*, user_id: Any, connection_id: str, reason: str, kind: str | None = None) -> bool:
    connections = Connection.objects.filter(user_id=user_id, connection_id=connection_id)
    deleted, _ = (connections.filter(kind=kind) if kind else connections).delete()
    if deleted:
        connections_closed(user_id=user_id, reason=reason)
    return bool(deleted)


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


SESSION_PREFIX = "oauth-token:"


def session_connection_id(token_id: int) -> str:
    return f"{SESSION_PREFIX}{token_id}"


# --- profiles -----------------------------------------------------------------------


def profile_representation(profile: AvailabilityProfile) -> dict[str, Any]:
    return {
        "id": str(profile.id),
        "user_id": str(profile.user_id),
        "name": profile.name,
        "timezone": profile.timezone,
        "rules": profile.rules,
        "active": profile.active,
    }


def _profile_changed(profile: AvailabilityProfile, action: str) -> None:
    """Records the profile event and re-evaluates the user's schedule at once. Runs in a transaction."""
    record_event(
        organization_id=profile.organization_id,
        event_type=f"availability.profile.{action}",
        data=profile_representation(profile),
    )
    state = locked_state(User(pk=profile.user_id, organization_id=profile.organization_id))
    schedule_reevaluate(state, now=timezone.now())


def schedule_reevaluate(state: UserAvailability, *, now: datetime) -> bool:
    """Applies or lifts the schedule window in force now; records ``availability.schedule.triggered`` on a change.

    The caller holds the row lock. Returns whether the window in force changed.
    """
    window, profile_id = schedule_window(state.user_id, now)
    current = window.status if window else ""
    was = state.schedule_status
    if current == was:
        return False
    recompute(state, trigger=Trigger.SCHEDULE, source="schedule", now=now)
    with overriding(triggered_by=None, source="schedule"):
        record_event(
            organization_id=state.organization_id,
            event_type="availability.schedule.triggered",
            data={
                "user_id": str(state.user_id),
                "profile_id": str(profile_id) if profile_id else None,
                "action": "applied" if current else "lifted",
                "status": current or None,
                "previous_schedule_status": was or None,
                "window_start": isoformat_z(window.starts_at) if window else None,
                "window_end": isoformat_z(window.ends_at) if window else None,
                "current_status": state.status,
            },
        )
    return True


@transaction.atomic
def profile_create(
    *, owner: User, name: str, timezone: str, rules: list[dict[str, Any]], active: bool = True
) -> AvailabilityProfile:
    profile = AvailabilityProfile.objects.create(
        organization_id=organization_of(owner), user=owner, name=name, timezone=timezone, rules=rules, active=active
    )
    _profile_changed(profile, "created")
    return profile


@transaction.atomic
def profile_update(*, profile: AvailabilityProfile, **changes: Any) -> AvailabilityProfile:
    for field, value in changes.items():
        setattr(profile, field, value)
    profile.save()
    _profile_changed(profile, "updated")
    return profile


@transaction.atomic
def profile_delete(*, profile: AvailabilityProfile) -> None:
    representation_holder = AvailabilityProfile(
        id=profile.id, organization_id=profile.organization_id, user_id=profile.user_id, name=profile.name,
        timezone=profile.timezone, rules=profile.rules, active=profile.active,
    )  # fmt: skip
    profile.delete()
    _profile_changed(representation_holder, "deleted")
