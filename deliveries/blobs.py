"""Blob spill: an event body over ``ESL_MAX_PAYLOAD_SIZE`` is sent with refs to blobs in place of its parts.

Which parts leave the body is ``deliveries.payload``'s rule (``data_ref``, ``changes_ref``,
``event_ref``). Each blob is stored through Django's storage API, written once per event and
part, and served at a URL signed with ``SECRET_KEY`` that expires with the retention window.
"""

import hashlib
import hmac
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse

from deliveries.models import Blob, BlobPart
from deliveries.payload import fit_to_limit
from sapien.events.envelope import isoformat_z


class SpillableEvent(Protocol):
    """What sending an event's body reads of it: a stored ``Event``, or a claim's copy of one."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def organization_id(self) -> uuid.UUID: ...
    @property
    def created_at(self) -> datetime: ...


def blob_signature(blob_id: uuid.UUID | str, expires: int) -> str:
    message = f"blob:{blob_id}:{expires}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, "sha256").hexdigest()


def signed_blob_url(blob: Blob) -> str:
    expires = int(blob.expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": blob_signature(blob.id, expires)})
    return f"{settings.ESL_PUBLIC_URL}{reverse('blob-detail', args=[blob.id])}?{query}"


# Unix seconds of the year 33658: more digits than any real expiry, and far below int()'s digit limit.
MAX_EXPIRES_DIGITS = 12


def is_valid_blob_signature(blob_id: uuid.UUID | str, expires: str, signature: str) -> bool:
    """Whether the caller's raw ``expires`` and ``signature`` are those of a signed URL still in force.

    Any text is an answer, never an error: ``expires`` must be ASCII digits of a plausible length before
    it is parsed, and the signature is compared as bytes in constant time, whatever characters it holds.
    """
    if not (expires.isascii() and expires.isdigit() and len(expires) <= MAX_EXPIRES_DIGITS):
        return False
    if int(expires) < time.time():
        return False
    expected = blob_signature(blob_id, int(expires)).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass"))


def blob_for_event(event: SpillableEvent, part: BlobPart, content: bytes) -> Blob:
    """The event's blob of ``part``, written once; concurrent workers converge on the same row."""
    existing = Blob.objects.filter(event_id=event.id, part=part).first()
    if existing is not None:
        return existing
    name = event.id if part == BlobPart.DATA else f"{event.id}.{part}"
    path = default_storage.save(f"blobs/{event.organization_id}/{name}.json", ContentFile(content))
    try:
        with transaction.atomic():
            return Blob.objects.create(
                event_id=event.id,
                part=part,
                organization_id=event.organization_id,
                path=path,
                size_bytes=len(content),
                checksum=f"sha256:{hashlib.sha256(content).hexdigest()}",
                expires_at=event.created_at + timedelta(hours=settings.ESL_RETENTION_HOURS),
            )
    except IntegrityError:
        default_storage.delete(path)
        return Blob.objects.get(event_id=event.id, part=part)


def blob_reference(blob: Blob) -> dict[str, Any]:
    """Seed 001's ``data_ref`` shape, for every ref."""
    return {
        "type": "blob",
        "uri": signed_blob_url(blob),
        "expires_at": isoformat_z(blob.expires_at),
        "size_bytes": blob.size_bytes,
        "checksum": blob.checksum,
    }


def body_to_send(event: SpillableEvent) -> bytes:
    """The event's JSON as sent, at most ``ESL_MAX_PAYLOAD_SIZE`` bytes: inline, or with parts spilled to blobs."""

    def spill(part: BlobPart, content: bytes) -> dict[str, Any]:
        return blob_reference(blob_for_event(event, part, content))

    return fit_to_limit(event.type, event.body, limit=settings.ESL_MAX_PAYLOAD_SIZE, spill=spill)


def open_blob(blob: Blob) -> bytes:
    with default_storage.open(blob.path, "rb") as handle:
        content: bytes = handle.read()
    return content
