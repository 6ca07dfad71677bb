"""The seed 001 envelope as JSON Schema (draft 2020-12), around one type's ``data``.

It describes the body as sent, so it allows what ``deliveries.payload`` does to a large one: ``data`` and
``changes`` replaced by ``data_ref`` and ``changes_ref``, and, for the largest, the small envelope with
``event_ref`` whose blob holds the event as recorded (``metadata`` may then be left out).
"""

from typing import Any

from sapien.events.envelope import ENVELOPE_VERSION

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
SOURCES = ["api", "admin", "schedule", "system", "presence"]

UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
MOMENT: dict[str, Any] = {"type": "string", "format": "date-time"}

BLOB_REFERENCE: dict[str, Any] = {
    "type": "object",
    "description": "A part of the event left out of the body: a signed URL returns its JSON until expires_at.",
    "required": ["type", "uri", "expires_at", "size_bytes", "checksum"],
    "properties": {
        "type": {"const": "blob"},
        "uri": {"type": "string", "format": "uri"},
        "expires_at": MOMENT,
        "size_bytes": {"type": "integer", "minimum": 0},
        "checksum": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
    },
}

METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["correlation_id", "triggered_by", "source"],
    "properties": {
        "correlation_id": {"type": "string", "description": "The request or task that caused the change."},
        "triggered_by": {
            "type": ["string", "null"],
            "description": "The user id or OAuth client id that caused it; null for Sapien itself.",
        },
        "source": {"enum": SOURCES, "description": "What kind of actor caused it."},
    },
}

# A field's change on ``*.updated``: its value before and after.
CHANGE: dict[str, Any] = {"type": "object", "required": ["old", "new"], "properties": {"old": {}, "new": {}}}


def changes_schema(fields: list[str]) -> dict[str, Any]:
    """``changes``: only the fields that changed, at least one."""
    return {
        "type": "object",
        "minProperties": 1,
        "properties": {field: CHANGE for field in fields},
        "description": "Only the fields that changed, each with its old and new value.",
    }


def envelope_schema(event_type: str, data: dict[str, Any], *, changes: list[str] | None = None) -> dict[str, Any]:
    """The body of ``event_type``, whose ``data`` is ``data``; ``changes`` names the fields an update reports."""
    properties: dict[str, Any] = {
        "id": {**UUID, "description": "Unique; a receiver deduplicates on it (also the webhook-id header)."},
        "type": {"const": event_type},
        "version": {"const": ENVELOPE_VERSION},
        "timestamp": {**MOMENT, "description": "When the event was recorded (UTC, milliseconds)."},
        "organization_id": UUID,
        "data": data,
        "data_ref": BLOB_REFERENCE,
    }
    required_parts: list[dict[str, Any]] = [{"oneOf": [{"required": ["data"]}, {"required": ["data_ref"]}]}]
    if changes is not None:
        properties["changes"] = changes_schema(changes)
        properties["changes_ref"] = BLOB_REFERENCE
        required_parts.append({"oneOf": [{"required": ["changes"]}, {"required": ["changes_ref"]}]})
    properties["event_ref"] = {
        **BLOB_REFERENCE,
        "description": "Only in a body too large for every other form: the event as recorded, every field inline.",
    }
    properties["metadata"] = METADATA
    required_parts.append({"anyOf": [{"required": ["metadata"]}, {"required": ["event_ref"]}]})
    return {
        "$schema": DRAFT_2020_12,
        "title": event_type,
        "type": "object",
        "required": ["id", "type", "version", "timestamp", "organization_id"],
        "properties": properties,
        "allOf": required_parts,
    }
