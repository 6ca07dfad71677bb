"""The body a receiver is sent for an event: never larger than the limit, whatever the event holds.

The first of these that fits in ``limit`` bytes is sent:

1. the event's JSON as recorded;
2. with ``data`` replaced by ``data_ref`` (seed 001), the blob holding the JSON of ``data``;
3. with ``changes`` replaced by ``changes_ref`` as well, the blob holding the JSON of ``changes``;
4. a small envelope of ``id``, ``type``, ``version``, ``timestamp``, ``organization_id``, the refs of
   step 3, ``event_ref`` (the blob holding the event's JSON as recorded, every field inline) and
   ``metadata``;
5. the same without ``metadata`` (which ``event_ref``'s blob still holds).

Every ref has seed 001's shape, ``{"type": "blob", "uri", "expires_at", "size_bytes", "checksum"}``, and
takes the place of the field it replaces. Step 5 always fits in ``MIN_PAYLOAD_SIZE``: each field it
keeps is bounded (ids, a type name, a timestamp, three refs). Step 4 fits too for every event Sapien
records, whose metadata is a correlation id of at most 128 characters, an actor id and a source.

``user.availability.update`` is sent as recorded: seed 000's schema, whose shape it must keep, has no
room for a ref, and every field of it is bounded (``custom_message`` at most 256 characters, the user
agent 500, the rest ids, enums and timestamps), so that it stays a few kilobytes, far below
``MIN_PAYLOAD_SIZE``.
"""

import json
from collections.abc import Callable
from typing import Any

from deliveries.models import BlobPart
from sapien.events.envelope import OWN_SCHEMA_TYPES, to_json

# The smallest ``ESL_MAX_PAYLOAD_SIZE`` allowed (settings refuse less): step 5 and every
# ``user.availability.update`` fit in it.
MIN_PAYLOAD_SIZE = 16384

# Stores one part of an event (its JSON bytes) and returns the reference to send in its place.
Spill = Callable[[BlobPart, bytes], dict[str, Any]]

SMALL_ENVELOPE_FIELDS = ("id", "type", "version", "timestamp", "organization_id", "data_ref", "changes_ref")


def _encoded(value: Any) -> bytes:
    return to_json(value).encode("utf-8")


def _with_reference(envelope: dict[str, Any], part: str, reference: dict[str, Any]) -> dict[str, Any]:
    """``envelope`` with ``part`` replaced, in the same position, by ``<part>_ref``."""
    return {
        (f"{key}_ref" if key == part else key): (reference if key == part else value) for key, value in envelope.items()
    }


def fit_to_limit(event_type: str, body: str, *, limit: int, spill: Spill) -> bytes:
    """The bytes to send for the event whose recorded JSON is ``body``: the first step above that fits.

    ``spill`` is called only for the parts that must leave the body, in the order of the steps.
    """
    inline = body.encode("utf-8")
    if len(inline) <= limit or event_type in OWN_SCHEMA_TYPES:
        return inline
    envelope: dict[str, Any] = json.loads(body)
    for part in (BlobPart.DATA, BlobPart.CHANGES):
        if part.value not in envelope:
            continue
        envelope = _with_reference(envelope, part.value, spill(part, _encoded(envelope[part.value])))
        spilled = _encoded(envelope)
        if len(spilled) <= limit:
            return spilled
    small = {key: envelope[key] for key in SMALL_ENVELOPE_FIELDS if key in envelope}
    small["event_ref"] = spill(BlobPart.EVENT, inline)
    if "metadata" in envelope:
        with_metadata = _encoded({**small, "metadata": envelope["metadata"]})
        if len(with_metadata) <= limit:
            return with_metadata
    return _encoded(small)
