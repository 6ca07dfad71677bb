"""Each event type as ``GET /api/v1/event-types`` publishes it: what it means, who causes it, its schema and
an example body that validates against that schema."""

from typing import Any

from sapien.events.catalog import EVENT_TYPES
from sapien.events.envelope import ENVELOPE_VERSION, OWN_SCHEMA_TYPES
from sapien.events.examples import example_body
from sapien.events.schemas import event_schema

ALL_SOURCES = ["api", "admin", "schedule", "system", "presence"]
AVAILABILITY_SCOPES = ["availability:write", "events:admin"]

# type, or family prefix -> (the API scopes whose calls cause it, the ``metadata.source`` values it carries).
# ``user.availability.update`` has no ``metadata``: its sources are those of its twin ``availability.changed``.
_PRODUCED_BY: dict[str, tuple[list[str], list[str]]] = {
    "person.": (["entities:write"], ["api", "admin"]),
    "pet.": (["entities:write"], ["api", "admin"]),
    "toy.": (["entities:write"], ["api", "admin"]),
    "availability.changed": (AVAILABILITY_SCOPES, ALL_SOURCES),
    "user.availability.update": (AVAILABILITY_SCOPES, ALL_SOURCES),
    "availability.profile.": (AVAILABILITY_SCOPES, ["api", "admin"]),
    "availability.schedule.triggered": ([], ["schedule"]),
    "presence.": (["availability:write"], ["presence"]),
    "system.rate_limit.": ([], ["system"]),
    "system.maintenance.scheduled": ([], ["system", "admin"]),
    "system.subscription.disabled": ([], ["system"]),
    "system.subscription.failing": ([], ["system"]),
    "system.subscription.recovered": ([], ["system"]),
    "system.ping": (["events:subscribe"], ["api", "system"]),  # system: a disabled subscription's probe
}


def produced_by(event_type: str) -> dict[str, list[str]]:
    for key, (scopes, sources) in _PRODUCED_BY.items():
        if event_type == key or (key.endswith(".") and event_type.startswith(key)):
            return {"scopes": scopes, "sources": sources}
    raise KeyError(event_type)


def event_type_entry(event_type: str) -> dict[str, Any]:
    """One entry of the catalog. ``KeyError`` when ``event_type`` is not one Sapien emits."""
    description = EVENT_TYPES[event_type]
    return {
        "type": event_type,
        "description": description,
        "family": event_type.split(".", 1)[0] + ".*",
        "version": "1.0.0" if event_type in OWN_SCHEMA_TYPES else ENVELOPE_VERSION,
        "counts_against_quota": not event_type.startswith("system."),
        "produced_by": produced_by(event_type),
        "schema": event_schema(event_type),
        "example": example_body(event_type),
    }


def event_type_catalog() -> list[dict[str, Any]]:
    """Every type Sapien emits, in the catalog's order (entities, availability, presence, system)."""
    return [event_type_entry(event_type) for event_type in EVENT_TYPES]
