"""An event's ordering key: what an ordered subscription keeps in order (docs/webhooks.md#ordered-delivery).

The user for availability and presence events, the entity for entity events, and none for ``system.*``
(those are never held back). The key names its kind (``user:<id>``, ``person:<id>``), so that one user's
availability and presence events share a key. ``ordering_key()`` is the rule in Python, applied when an event
is recorded; ``ordering_key_sql()`` is the same rule in SQL, for a replay that makes new deliveries of events
already recorded (``tests/events/test_ordering.py`` holds the two together, type by type).
"""

from typing import Any

# Event family → (the key's kind, the field of ``data`` that holds its id).
KEY_FIELDS: dict[str, tuple[str, str]] = {
    "person": ("person", "id"),
    "pet": ("pet", "id"),
    "toy": ("toy", "id"),
    "availability": ("user", "user_id"),
    "user": ("user", "user_id"),  # user.availability.update: seed 000's shape also puts user_id in data
    "presence": ("user", "userId"),  # seed 003's presence payloads
}


def ordering_key(event_type: str, data: Any) -> str | None:
    """The key of an event of ``event_type`` whose ``data`` is given; ``None`` when the type has none."""
    kind_field = KEY_FIELDS.get(event_type.split(".", 1)[0])
    if kind_field is None or not isinstance(data, dict):
        return None
    kind, field = kind_field
    value = data.get(field)
    return f"{kind}:{value}" if value else None


def ordering_key_sql(event_type: str, body: str) -> str:
    """SQL for ``ordering_key()`` over an event row: ``event_type`` and ``body`` (its JSON text) are SQL
    expressions. Parses the body only for the types that have a key."""
    cases = " ".join(
        f"WHEN '{family}' THEN '{kind}:' || nullif(({body})::jsonb -> 'data' ->> '{field}', '')"
        for family, (kind, field) in KEY_FIELDS.items()
    )
    return f"(CASE split_part({event_type}, '.', 1) {cases} END)"
