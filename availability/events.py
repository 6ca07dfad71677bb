"""The availability events and their payloads: ``user.availability.update`` (seed 000's schema),
``availability.changed`` (seed 001's envelope), the presence events (seed 003),
``availability.profile.*`` and ``availability.schedule.triggered``.

Each ``record_*`` inserts outbox rows, so it must run inside the transaction of
the change it reports (``sapien.events.outbox``).

Seed 000's schema allows no nulls in its string fields, so absent values are
left out rather than sent as ``null``; ``ip_address`` is sent only when IPv4.
"""

import ipaddress
import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from availability.models import AvailabilityProfile, Trigger, UserAvailability
from availability.schedules import Window
from sapien.core.context import overriding
from sapien.events.envelope import isoformat_z
from sapien.events.outbox import record_event, record_prebuilt_event

SCHEMA_VERSION = "1.0.0"

# ``metadata.source`` of the seed 001 envelope: api|admin|schedule|system|presence.
ENVELOPE_SOURCE: dict[str, str] = {
    Trigger.MANUAL: "api",
    Trigger.SYSTEM_OVERRIDE: "admin",
    Trigger.SCHEDULE: "schedule",
    Trigger.SESSION_START: "presence",
    Trigger.SESSION_END: "presence",
    Trigger.IDLE_TIMEOUT: "presence",
    Trigger.ACTIVITY_RESUME: "presence",
}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True


def _is_ipv4(value: str | None) -> bool:
    try:
        return value is not None and isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


def user_availability_update(state: UserAvailability, *, event_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    availability: dict[str, Any] = {"status": state.status, "changed_at": isoformat_z(state.changed_at or now)}
    if state.emitted_status:
        availability["previous_status"] = state.emitted_status
    if state.expires_at:
        availability["expires_at"] = isoformat_z(state.expires_at)
    if state.custom_message:
        availability["custom_message"] = state.custom_message
    trigger: dict[str, Any] = {"type": state.trigger or Trigger.MANUAL, "source": state.trigger_source or "api"}
    if _is_uuid(state.actor_id):
        trigger["actor_id"] = state.actor_id
    context = state.event_context or {}
    metadata: dict[str, Any] = {}
    if _is_uuid(context.get("session_id", "")):
        metadata["session_id"] = context["session_id"]
    if context.get("device_type"):
        metadata["device_type"] = context["device_type"]
    if _is_ipv4(context.get("ip_address")):
        metadata["ip_address"] = context["ip_address"]
    if context.get("user_agent"):
        metadata["user_agent"] = context["user_agent"][:500]
    data: dict[str, Any] = {
        "user_id": str(state.user_id),
        "organization_id": str(state.organization_id),
        "availability": availability,
        "trigger": trigger,
    }
    if metadata:
        data["metadata"] = metadata
    return {
        "event_id": str(event_id),
        "event_type": "user.availability.update",
        "timestamp": isoformat_z(now),
        "version": SCHEMA_VERSION,
        "data": data,
    }


def availability_changed_data(state: UserAvailability) -> dict[str, Any]:
    return {
        "user_id": str(state.user_id),
        "previous_status": state.emitted_status or None,
        "current_status": state.status,
        "profile_id": str(state.profile_id) if state.profile_id else None,
        "effective_until": isoformat_z(state.expires_at) if state.expires_at else None,
        "reason": state.custom_message or (state.trigger or "").replace("_", " ") or None,
    }


def record_availability_events(state: UserAvailability) -> None:
    """Records both events for the state as it is now; the caller updates what was emitted."""
    now = timezone.now()
    event_id = uuid.uuid4()
    record_prebuilt_event(
        event_id=event_id,
        organization_id=state.organization_id,
        event_type="user.availability.update",
        body=user_availability_update(state, event_id=event_id, now=now),
        occurred_at=now,
    )
    source = "system" if state.trigger_source == "expiry" else ENVELOPE_SOURCE.get(state.trigger, "system")
    with overriding(triggered_by=state.actor_id or None, source=source):
        record_event(
            organization_id=state.organization_id, event_type="availability.changed",
            data=availability_changed_data(state),
        )  # fmt: skip


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def record_user_online(state: UserAvailability, connection: dict[str, Any], *, now: datetime) -> None:
    metadata = {
        key: value
        for key, value in (
            ("device", connection.get("device_type")),
            ("userAgent", connection.get("user_agent")),
            ("location", connection.get("location")),
            ("connId", connection.get("connection_id")),
        )
        if value
    }
    _record_presence(
        state, "presence.user_online",
        {"type": "user_online", "userId": str(state.user_id), "timestamp": epoch_ms(now), "metadata": metadata},
    )  # fmt: skip


def record_user_offline(state: UserAvailability, *, reason: str, last_seen: datetime | None, now: datetime) -> None:
    _record_presence(
        state,
        "presence.user_offline",
        {
            "type": "user_offline", "userId": str(state.user_id), "timestamp": epoch_ms(now),
            "lastSeen": epoch_ms(last_seen or now), "reason": reason,
        },
    )  # fmt: skip


def _record_presence(state: UserAvailability, event_type: str, data: dict[str, Any]) -> None:
    with overriding(triggered_by=str(state.user_id), source="presence"):
        record_event(organization_id=state.organization_id, event_type=event_type, data=data)


def profile_data(profile: AvailabilityProfile) -> dict[str, Any]:
    """The ``data`` of ``availability.profile.*``: the profile as the API shows it."""
    return {
        "id": str(profile.id),
        "user_id": str(profile.user_id),
        "name": profile.name,
        "timezone": profile.timezone,
        "rules": profile.rules,
        "active": profile.active,
    }


def record_profile_changed(profile: AvailabilityProfile, *, action: str) -> None:
    """Records ``availability.profile.<action>`` (created, updated, deleted)."""
    record_event(
        organization_id=profile.organization_id,
        event_type=f"availability.profile.{action}",
        data=profile_data(profile),
    )


def record_schedule_triggered(
    state: UserAvailability, *, profile_id: uuid.UUID | None, window: Window | None, previous_schedule_status: str
) -> None:
    """Records ``availability.schedule.triggered``: ``window`` applied, or lifted when ``None``; after the recompute."""
    current = window.status if window else ""
    with overriding(triggered_by=None, source="schedule"):
        record_event(
            organization_id=state.organization_id,
            event_type="availability.schedule.triggered",
            data={
                "user_id": str(state.user_id),
                "profile_id": str(profile_id) if profile_id else None,
                "action": "applied" if current else "lifted",
                "status": current or None,
                "previous_schedule_status": previous_schedule_status or None,
                "window_start": isoformat_z(window.starts_at) if window else None,
                "window_end": isoformat_z(window.ends_at) if window else None,
                "current_status": state.status,
            },
        )
