"""An example body of every event type, valid against its schema, and its sending as a real event.

The catalog shows each example as is. ``record_example`` records one addressed to a single subscription,
with a fresh id, timestamp and organization, so that it is signed, deduplicated and logged like any event;
the example's own ids and times inside ``data`` are kept. It is marked as Sapien's doing:
``metadata.source`` is ``system`` (no real entity or availability change carries it), and in the seed 000
shape, which has no such field, ``trigger.source`` is ``example``.
"""

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from sapien.core.context import EventContext, current_context, overriding
from sapien.events.catalog import EVENT_TYPES
from sapien.events.envelope import OWN_SCHEMA_TYPES, build_envelope, isoformat_z
from sapien.events.models import Event
from sapien.events.outbox import record_event, record_prebuilt_event

EXAMPLE_SOURCE = "system"
EXAMPLE_TRIGGER_SOURCE = "example"

ORGANIZATION_ID = "6f1c2b8e-5d3a-4c7e-9b1a-2e4f6a8c0d12"
USER_ID = "a1b2c3d4-e5f6-4890-abcd-ef1234567890"
PERSON_ID = "3d8e4a52-9c1f-4b7a-8e2d-5f6a7b8c9d01"
PET_ID = "7b2c9e14-0a3d-4f5b-9c6e-1d2e3f4a5b02"
TOY_ID = "c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e03"
PROFILE_ID = "e8f9a0b1-2c3d-4e5f-a6b7-c8d9e0f1a204"
SUBSCRIPTION_ID = "0f1e2d3c-4b5a-4968-8776-655443322105"
CREATED_AT = "2024-01-15T09:00:00.000000Z"
UPDATED_AT = "2024-01-15T14:32:00.000000Z"
OCCURRED_AT = datetime(2024, 1, 15, 14, 32, tzinfo=UTC)
EXAMPLE_EVENT_ID = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
EXAMPLE_CORRELATION_ID = "req_4f2a9c1e7b3d4e5f8a6b0c1d2e3f4a5b"

PERSON = {
    "id": PERSON_ID,
    "name": "John Doe",
    "email": "john.doe@example.com",
    "status": "active",
    "notes": "",
    "attributes": {"team": "support"},
    "pets": [{"id": PET_ID, "name": "Rex", "type": "dog"}],
    "created_at": CREATED_AT,
    "updated_at": UPDATED_AT,
}
PET = {
    "id": PET_ID,
    "name": "Rex",
    "type": "dog",
    "owner": PERSON_ID,
    "toys": [{"id": TOY_ID, "name": "Ball"}],
    "created_at": CREATED_AT,
    "updated_at": UPDATED_AT,
}
TOY = {"id": TOY_ID, "name": "Ball", "pet": PET_ID, "created_at": CREATED_AT, "updated_at": UPDATED_AT}
PROFILE = {
    "id": PROFILE_ID,
    "user_id": USER_ID,
    "name": "Working hours",
    "timezone": "Europe/Paris",
    "rules": [{"days_of_week": [1, 2, 3, 4, 5], "start_time": "09:00", "end_time": "17:00", "status": "busy"}],
    "active": True,
}
QUOTA_WINDOW = {
    "limit": 10000,
    "window_start": "2024-01-15T14:00:00.000Z",
    "window_end": "2024-01-15T15:00:00.000Z",
}

# type -> (data, changes, metadata.source): what a real event of that type would carry.
ENVELOPED: dict[str, tuple[dict[str, Any], dict[str, Any] | None, str]] = {
    "person.created": (PERSON, None, "api"),
    "person.updated": (PERSON, {"name": {"old": "John Smith", "new": "John Doe"}}, "api"),
    "person.deleted": (PERSON, None, "api"),
    "pet.created": (PET, None, "api"),
    "pet.updated": (PET, {"owner": {"old": None, "new": PERSON_ID}}, "api"),
    "pet.deleted": (PET, None, "api"),
    "toy.created": (TOY, None, "api"),
    "toy.updated": (TOY, {"name": {"old": "Bone", "new": "Ball"}}, "api"),
    "toy.deleted": (TOY, None, "api"),
    "availability.changed": (
        {
            "user_id": USER_ID,
            "previous_status": "available",
            "current_status": "busy",
            "profile_id": None,
            "effective_until": "2024-01-15T16:00:00.000Z",
            "reason": "In a meeting until 4 PM",
        },
        None,
        "api",
    ),
    "availability.profile.created": (PROFILE, None, "api"),
    "availability.profile.updated": (PROFILE, None, "api"),
    "availability.profile.deleted": (PROFILE, None, "api"),
    "availability.schedule.triggered": (
        {
            "user_id": USER_ID,
            "profile_id": PROFILE_ID,
            "action": "applied",
            "status": "busy",
            "previous_schedule_status": None,
            "window_start": "2024-01-15T08:00:00.000Z",
            "window_end": "2024-01-15T16:00:00.000Z",
            "current_status": "busy",
        },
        None,
        "schedule",
    ),
    "presence.user_online": (
        {
            "type": "user_online",
            "userId": USER_ID,
            "timestamp": 1705329120000,
            "metadata": {"device": "web", "userAgent": "Mozilla/5.0", "location": "Paris", "connId": "tab-1"},
        },
        None,
        "presence",
    ),
    "presence.user_offline": (
        {
            "type": "user_offline",
            "userId": USER_ID,
            "timestamp": 1705329120000,
            "lastSeen": 1705329115000,
            "reason": "disconnect",
        },
        None,
        "presence",
    ),
    "system.rate_limit.warning": ({**QUOTA_WINDOW, "used": 8000, "threshold_percent": 80}, None, "system"),
    "system.rate_limit.exceeded": (
        {**QUOTA_WINDOW, "used": 10000, "threshold_percent": 100, "deliveries_resume_at": "2024-01-15T15:00:00.000Z"},
        None,
        "system",
    ),
    "system.maintenance.scheduled": (
        {
            "starts_at": "2024-01-20T02:00:00.000Z",
            "ends_at": "2024-01-20T03:00:00.000Z",
            "message": "Database upgrade; deliveries resume afterwards.",
        },
        None,
        "admin",
    ),
    "system.subscription.disabled": (
        {
            "subscription_id": SUBSCRIPTION_ID,
            "callback_url": "https://hooks.example.com/sapien",
            "reason": "Disabled after 50 consecutive failed deliveries since 2024-01-14 14:00 UTC.",
            "consecutive_failures": 50,
            "disabled_at": "2024-01-15T14:32:00.000Z",
        },
        None,
        "system",
    ),
    "system.subscription.failing": (
        {
            "subscription_id": SUBSCRIPTION_ID,
            "callback_url": "https://hooks.example.com/sapien",
            "consecutive_failures": 10,
            "failing_since": "2024-01-15T09:10:00.000Z",
            "last_failure_reason": "HTTP 503",
            "disable_after_failures": 20,
            "disables_at_earliest": "2024-01-16T09:10:00.000Z",
        },
        None,
        "system",
    ),
    "system.subscription.recovered": (
        {
            "subscription_id": SUBSCRIPTION_ID,
            "callback_url": "https://hooks.example.com/sapien",
            "active": True,
            "probe": False,
            "probes_sent": 0,
            "failing_notice_at": "2024-01-15T12:02:00.000Z",
            "disabled_at": None,
            "recovered_at": "2024-01-15T14:32:00.000Z",
        },
        None,
        "system",
    ),
    "system.ping": ({"subscription_id": SUBSCRIPTION_ID, "message": "Ping from Sapien ESL."}, None, "api"),
}

# Seed 000's first example, with valid ids where the seed's are not UUIDs.
USER_AVAILABILITY_UPDATE: dict[str, Any] = {
    "event_id": str(EXAMPLE_EVENT_ID),
    "event_type": "user.availability.update",
    "timestamp": "2024-01-15T14:30:00.000Z",
    "version": "1.0.0",
    "data": {
        "user_id": USER_ID,
        "organization_id": ORGANIZATION_ID,
        "availability": {
            "status": "busy",
            "previous_status": "available",
            "changed_at": "2024-01-15T14:30:00.000Z",
            "expires_at": "2024-01-15T16:00:00.000Z",
            "custom_message": "In a meeting until 4 PM",
        },
        "trigger": {"type": "manual", "source": "api", "actor_id": USER_ID},
        "metadata": {"device_type": "web", "ip_address": "192.0.2.10", "user_agent": "Mozilla/5.0"},
    },
}


def example_body(event_type: str) -> dict[str, Any]:
    """The catalog's example of ``event_type``. ``KeyError`` when unknown."""
    if event_type in OWN_SCHEMA_TYPES:
        return copy.deepcopy(USER_AVAILABILITY_UPDATE)
    data, changes, source = ENVELOPED[event_type]
    return build_envelope(
        event_id=EXAMPLE_EVENT_ID,
        event_type=event_type,
        organization_id=uuid.UUID(ORGANIZATION_ID),
        occurred_at=OCCURRED_AT,
        data=copy.deepcopy(data),
        context=EventContext(correlation_id=EXAMPLE_CORRELATION_ID, triggered_by=USER_ID, source=source),
        changes=copy.deepcopy(changes),
    )


def record_example(*, organization_id: uuid.UUID, event_type: str, recipient_id: uuid.UUID) -> Event | None:
    """Records ``event_type``'s example for the subscription ``recipient_id`` alone; ``None`` when events are off.

    Must run inside a transaction, as ``record_event``. The caller (``metadata.triggered_by``) and the
    request's correlation id are the real ones.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {event_type!r}")
    example = example_body(event_type)
    if event_type in OWN_SCHEMA_TYPES:
        event_id, now = uuid.uuid4(), timezone.now()
        example.update(event_id=str(event_id), timestamp=isoformat_z(now))
        example["data"]["organization_id"] = str(organization_id)
        example["data"]["trigger"]["source"] = EXAMPLE_TRIGGER_SOURCE
        return record_prebuilt_event(
            event_id=event_id,
            organization_id=organization_id,
            event_type=event_type,
            body=example,
            occurred_at=now,
            recipient_id=recipient_id,
        )
    with overriding(triggered_by=current_context().triggered_by, source=EXAMPLE_SOURCE):
        return record_event(
            organization_id=organization_id,
            event_type=event_type,
            data=example["data"],
            changes=example.get("changes"),
            recipient_id=recipient_id,
        )
