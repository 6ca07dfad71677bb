"""The event schemas in the OpenAPI document, so that generated clients get a type for every event body.

The document is OpenAPI 3.0, whose schema dialect predates the JSON Schema drafts the event schemas use:
``openapi_schema()`` rewrites the few keywords that differ (``const``, a type list with ``null``, an
untyped ``enum``) and keeps the meaning. Each type becomes a component (``PersonCreatedEvent``…), and
``WebhookEvent`` is one of them; the catalog's ``example`` refers to it.
"""

from typing import Any

from sapien.events.catalog import EVENT_TYPES
from sapien.events.schemas import event_schema

WEBHOOK_EVENT = "WebhookEvent"
WEBHOOK_EVENT_REFERENCE = {"$ref": f"#/components/schemas/{WEBHOOK_EVENT}"}
_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


def component_name(event_type: str) -> str:
    """``system.rate_limit.warning`` -> ``SystemRateLimitWarningEvent``."""
    words = event_type.replace("_", ".").split(".")
    return "".join(word.capitalize() for word in words) + "Event"


def _type_of(values: list[Any]) -> str | None:
    """The one JSON type of the non-null ``values``, if they share one."""
    kinds = {next((name for kind, name in _JSON_TYPES if isinstance(v, kind)), None) for v in values if v is not None}
    return kinds.pop() if len(kinds) == 1 else None


def openapi_schema(schema: Any) -> Any:
    """``schema`` (draft-07 or 2020-12) in OpenAPI 3.0's dialect."""
    if isinstance(schema, list):
        return [openapi_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$schema", "$id"):
            continue
        if key == "properties":
            result[key] = {name: openapi_schema(child) for name, child in value.items()}
        elif key in ("const", "enum"):
            result["enum"] = [value] if key == "const" else list(value)
        elif key == "type" and isinstance(value, list):
            (single,) = [kind for kind in value if kind != "null"]
            result["type"] = single
            if "null" in value:
                result["nullable"] = True
        else:
            result[key] = openapi_schema(value)
    if "enum" in result:
        nullable = (None in result["enum"] and result.get("type") in (None, "null")) or result.get("nullable")
        if "type" not in result and (kind := _type_of(result["enum"])) is not None:
            result["type"] = kind
        if nullable:
            result["nullable"] = True
        else:  # a typed schema refuses null, whatever its enum lists (seed 000's previous_status)
            result["enum"] = [item for item in result["enum"] if item is not None]
    return result


def event_components() -> dict[str, Any]:
    """One component per event type, and ``WebhookEvent``: any of them."""
    components = {component_name(event_type): openapi_schema(event_schema(event_type)) for event_type in EVENT_TYPES}
    components[WEBHOOK_EVENT] = {
        "description": "The body of a webhook request: one of the event types (GET /api/v1/event-types).",
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in components],
    }
    return components


def add_event_components(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the event components beside the API's own."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(event_components())
    return result
