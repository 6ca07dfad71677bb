"""The ``data`` of each enveloped event type, as JSON Schema, and the fields its ``changes`` may name.

Entities' ``data`` is the entity as the API shows it; availability's follows seed 001, presence's seed 003.
"""

from typing import Any

from sapien.events.schemas.envelopes import MOMENT, UUID

STATUSES = ["available", "away", "busy", "do_not_disturb", "offline"]
STATUS: dict[str, Any] = {"enum": STATUSES}
MAYBE_STATUS: dict[str, Any] = {"enum": [*STATUSES, None]}
MAYBE_UUID: dict[str, Any] = {"type": ["string", "null"], "format": "uuid"}
MAYBE_MOMENT: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
EPOCH_MS: dict[str, Any] = {"type": "integer", "minimum": 0, "description": "Milliseconds since the Unix epoch."}


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with these properties, all required but ``optional``."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", **({"required": required} if required else {}), "properties": properties}


PERSON = _object(
    {
        "id": UUID,
        "name": {"type": "string", "maxLength": 200},
        "email": {"type": "string", "description": "An email address, or empty."},
        "status": {"enum": ["active", "inactive", "archived"]},
        "notes": {"type": "string"},
        "attributes": {"type": "object", "additionalProperties": True, "description": "Free-form."},
        "pets": {
            "type": "array",
            "items": _object({"id": UUID, "name": {"type": "string"}, "type": {"type": "string"}}),
        },
        "created_at": MOMENT,
        "updated_at": MOMENT,
    }
)
PET = _object(
    {
        "id": UUID,
        "name": {"type": "string", "maxLength": 200},
        "type": {"type": "string", "maxLength": 50},
        "owner": {**MAYBE_UUID, "description": "The owning person's id."},
        "toys": {"type": "array", "items": _object({"id": UUID, "name": {"type": "string"}})},
        "created_at": MOMENT,
        "updated_at": MOMENT,
    }
)
TOY = _object(
    {
        "id": UUID,
        "name": {"type": "string", "maxLength": 200},
        "pet": {**MAYBE_UUID, "description": "The pet's id."},
        "created_at": MOMENT,
        "updated_at": MOMENT,
    }
)
# The API's field names an ``*.updated`` event may report in ``changes`` (sapien.entities.signals).
CHANGED_FIELDS: dict[str, list[str]] = {
    "person.updated": ["name", "email", "status", "notes", "attributes"],
    "pet.updated": ["name", "type", "owner"],
    "toy.updated": ["name", "pet"],
}

PROFILE = _object(
    {
        "id": UUID,
        "user_id": UUID,
        "name": {"type": "string"},
        "timezone": {"type": "string", "description": "An IANA time zone name."},
        "rules": {
            "type": "array",
            "items": _object(
                {
                    "days_of_week": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0, "maximum": 6},
                        "description": "Sunday is 0.",
                    },
                    "start_time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                    "end_time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                    "status": {"enum": [status for status in STATUSES if status != "offline"]},
                }
            ),
        },
        "active": {"type": "boolean"},
    }
)
AVAILABILITY_CHANGED = _object(
    {
        "user_id": UUID,
        "previous_status": MAYBE_STATUS,
        "current_status": STATUS,
        "profile_id": MAYBE_UUID,
        "effective_until": {**MAYBE_MOMENT, "description": "When the declared status expires, if it does."},
        "reason": {"type": ["string", "null"], "description": "The custom message, or the trigger in words."},
    }
)
SCHEDULE_TRIGGERED = _object(
    {
        "user_id": UUID,
        "profile_id": MAYBE_UUID,
        "action": {"enum": ["applied", "lifted"]},
        "status": {**MAYBE_STATUS, "description": "The window's status; null when lifted."},
        "previous_schedule_status": MAYBE_STATUS,
        "window_start": MAYBE_MOMENT,
        "window_end": MAYBE_MOMENT,
        "current_status": {**STATUS, "description": "The status shown after the change (a higher layer may win)."},
    }
)
USER_ONLINE = _object(
    {
        "type": {"const": "user_online"},
        "userId": UUID,
        "timestamp": EPOCH_MS,
        "metadata": _object(
            {
                "device": {"enum": ["web", "mobile", "desktop", "api"]},
                "userAgent": {"type": "string"},
                "location": {"type": "string"},
                "connId": {"type": "string"},
            },
            optional=("device", "userAgent", "location", "connId"),
        ),
    }
)
USER_OFFLINE = _object(
    {
        "type": {"const": "user_offline"},
        "userId": UUID,
        "timestamp": EPOCH_MS,
        "lastSeen": EPOCH_MS,
        "reason": {"enum": ["disconnect", "timeout", "logout"]},
    }
)
QUOTA_WINDOW: dict[str, Any] = {
    "limit": {"type": "integer", "minimum": 1, "description": "Events per hour for the organization's tier."},
    "used": {"type": "integer", "minimum": 0},
    "window_start": MOMENT,
    "window_end": MOMENT,
}

DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    **{f"person.{action}": PERSON for action in ("created", "updated", "deleted")},
    **{f"pet.{action}": PET for action in ("created", "updated", "deleted")},
    **{f"toy.{action}": TOY for action in ("created", "updated", "deleted")},
    "availability.changed": AVAILABILITY_CHANGED,
    **{f"availability.profile.{action}": PROFILE for action in ("created", "updated", "deleted")},
    "availability.schedule.triggered": SCHEDULE_TRIGGERED,
    "presence.user_online": USER_ONLINE,
    "presence.user_offline": USER_OFFLINE,
    "system.rate_limit.warning": _object({**QUOTA_WINDOW, "threshold_percent": {"const": 80}}),
    "system.rate_limit.exceeded": _object(
        {**QUOTA_WINDOW, "threshold_percent": {"const": 100}, "deliveries_resume_at": MOMENT}
    ),
    "system.maintenance.scheduled": _object({"starts_at": MOMENT, "ends_at": MOMENT, "message": {"type": "string"}}),
    "system.subscription.disabled": _object(
        {
            "subscription_id": UUID,
            "callback_url": {"type": "string", "format": "uri"},
            "reason": {"type": "string"},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "disabled_at": MOMENT,
        }
    ),
    "system.subscription.failing": _object(
        {
            "subscription_id": UUID,
            "callback_url": {"type": "string", "format": "uri"},
            "consecutive_failures": {"type": "integer", "minimum": 1},
            "failing_since": MOMENT,
            "last_failure_reason": {"type": "string"},
            "disable_after_failures": {"type": "integer", "minimum": 1},
            "disables_at_earliest": MAYBE_MOMENT,
        }
    ),
    "system.subscription.recovered": _object(
        {
            "subscription_id": UUID,
            "callback_url": {"type": "string", "format": "uri"},
            "active": {"type": "boolean", "description": "False: still disabled; its owner re-enables it."},
            "probe": {"type": "boolean", "description": "True: a disabled subscription answered its probe."},
            "probes_sent": {"type": "integer", "minimum": 0},
            "failing_notice_at": MAYBE_MOMENT,
            "disabled_at": MAYBE_MOMENT,
            "recovered_at": MOMENT,
        }
    ),
    "system.ping": _object(
        {
            "subscription_id": UUID,
            "message": {"type": "string"},
            "probe": {"type": "integer", "minimum": 1, "description": "Set on a disabled subscription's probe."},
        },
        optional=("probe",),
    ),
}
