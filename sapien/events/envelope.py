"""The event envelope of seed 001, and its JSON text."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder

from sapien.core.context import EventContext

ENVELOPE_VERSION = "1.0"

# Delivered in the exact shape of another schema (seed 000's) rather than in this envelope.
OWN_SCHEMA_TYPES = frozenset({"user.availability.update"})


def isoformat_z(moment: datetime) -> str:
    """``2024-01-15T14:32:00.000Z``: UTC, milliseconds, a ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# Dates and times, decimals and lazy strings through Django's encoder (``default``), for its format.
_DJANGO_DEFAULT = DjangoJSONEncoder().default


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII as UTF-8: orjson, which is several times faster on an entity's body, and the
    standard library for what orjson will not write (an integer beyond 64 bits, a key that is not a string,
    a lone surrogate), with the same text either way for what both write."""
    try:
        return orjson.dumps(value, default=_DJANGO_DEFAULT, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def build_envelope(
    *,
    event_id: uuid.UUID,
    event_type: str,
    organization_id: uuid.UUID,
    occurred_at: datetime,
    data: dict[str, Any],
    context: EventContext,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "id": str(event_id),
        "type": event_type,
        "version": ENVELOPE_VERSION,
        "timestamp": isoformat_z(occurred_at),
        "organization_id": str(organization_id),
        "data": data,
    }
    if changes is not None:
        envelope["changes"] = changes
    envelope["metadata"] = {
        "correlation_id": context.correlation_id,
        "triggered_by": context.triggered_by,
        "source": context.source,
    }
    return envelope
