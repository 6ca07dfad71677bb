"""The JSON Schema of every event body, by type: what a receiver is sent, and the source of truth for it.

``user.availability.update`` is seed 000's schema exactly (draft-07, ``user.availability.update.json``);
every other type is the seed 001 envelope (draft 2020-12, ``envelopes.py``) around its own ``data``
(``data.py``). The schemas leave objects open, so that a field added within a version breaks no receiver;
``strict()`` closes them, for the tests that prove the producers send nothing the schemas do not name.
"""

import copy
import functools
import json
from pathlib import Path
from typing import Any

from sapien.events.catalog import EVENT_TYPES
from sapien.events.envelope import OWN_SCHEMA_TYPES
from sapien.events.schemas.data import CHANGED_FIELDS, DATA_SCHEMAS
from sapien.events.schemas.envelopes import envelope_schema

HERE = Path(__file__).resolve().parent


@functools.cache
def _own_schema(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((HERE / f"{event_type}.json").read_text(encoding="utf-8"))
    return schema


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    return {
        event_type: _own_schema(event_type)
        if event_type in OWN_SCHEMA_TYPES
        else envelope_schema(event_type, DATA_SCHEMAS[event_type], changes=CHANGED_FIELDS.get(event_type))
        for event_type in EVENT_TYPES
    }


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of ``event_type``'s body (a copy: callers may change it). ``KeyError`` when unknown."""
    return copy.deepcopy(_schemas()[event_type])


def strict(schema: Any) -> Any:
    """``schema`` with every object that names its properties closed to others (``additionalProperties: false``).

    An object that says ``additionalProperties`` itself (an entity's free-form ``attributes``) keeps its rule.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) if key != "const" and key != "enum" else value for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        closed["additionalProperties"] = False
    return closed
