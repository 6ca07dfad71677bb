"""The availability state engine: the per-user lock, the recompute, and the schedule re-evaluation.

Every change to a user's availability locks their ``UserAvailability`` row first
(per-user serialization, one lock order for every path, short transactions),
changes one layer, then calls ``recompute``, which derives the status shown from
both layers as they are now (``rules.shown_status``). An effective change plans
one consolidated emission: at least 100 ms later and 5 s after the previous one,
sent by ``timers.emit_due_events``. The write services live in ``services/``.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from availability import events
from availability.models import (
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
from sapien.core.models import User
from sapien.core.transactions import assert_in_transaction

# Emission timing: changes this close together go out as one event, and events are this far apart.
CONSOLIDATION_WINDOW = timedelta(milliseconds=100)
EVENT_SPACING = timedelta(seconds=5)


def organization_of(user: User) -> uuid.UUID:
    """Availability is kept for organization members only (operators without one have none)."""
    if user.organization_id is None:
        raise ValueError(f"User {user.pk} belongs to no organization")
    return user.organization_id


def locked_state(user: User) -> UserAvailability:
    """The user's row, created if missing, locked until the transaction ends. Must run in a transaction."""
    assert_in_transaction("locked_state")
    UserAvailability.objects.get_or_create(user_id=user.pk, defaults={"organization_id": organization_of(user)})
    return UserAvailability.objects.select_for_update().get(user_id=user.pk)


def locked_existing_state(user_id: Any) -> UserAvailability | None:
    """Like ``locked_state`` but never creates the row (the user may be being deleted). Must run in a transaction."""
    assert_in_transaction("locked_existing_state")
    return UserAvailability.objects.select_for_update().filter(user_id=user_id).first()


def schedule_window(user_id: Any, now: datetime) -> tuple[Window | None, uuid.UUID | None]:
    """The profile window in force for the user at ``now`` and its profile: the first active profile's that has one."""
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
    threshold = timedelta(seconds=settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS)
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
        _plan_emission(state, now)
    state.save()
    return changed


def _plan_emission(state: UserAvailability, now: datetime) -> None:
    """Sets when the user's next event goes out (``event_due_at``) and wakes the timers then, once committed."""
    if state.event_due_at is not None:
        return  # an event is already due: it will carry this latest state
    due = now + CONSOLIDATION_WINDOW
    if state.last_event_at is not None:
        due = max(due, state.last_event_at + EVENT_SPACING)
    state.event_due_at = due
    transaction.on_commit(lambda: wake_at(due))


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
    events.record_schedule_triggered(state, profile_id=profile_id, window=window, previous_schedule_status=was)
    return True
