"""Blob spill: an event body over ``ESL_MAX_PAYLOAD_SIZE`` is sent with ``data_ref``.

The blob holds the JSON of ``data``, stored through Django's storage API, and is
served at a URL signed with ``SECRET_KEY`` that expires with the retention window.
"""

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse

from deliveries.models import Blob
from sapien.events.envelope import isoformat_z, to_json
from sapien.events.models import Event


def blob_signature(blob_id: uuid.UUID | str, expires: int) -> str:
    message = f"blob:{blob_id}:{expires}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, "sha256").hexdigest()


def signed_blob_url(blob: Blob) -> str:
    expires = int(blob.expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": blob_signature(blob.id, expires)})
    return f"{settings.ESL_PUBLIC_URL}{reverse('blob-detail', args=[blob.id])}?{query}"


def is_valid_blob_signature(blob_id: uuid.UUID | str, expires: str, signature: str) -> bool:
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(blob_signature(blob_id, int(expires)), signature)


def blob_for_event(event_id: uuid.UUID, organization_id: uuid.UUID, created_at: Any, data: Any) -> Blob:
    """The event's blob, written once; concurrent workers converge on the same row."""
    existing = Blob.objects.filter(event_id=event_id).first()
    if existing is not None:
        return existing
    content = to_json(data).encode("utf-8")
    path = default_storage.save(f"blobs/{organization_id}/{event_id}.json", ContentFile(content))
    try:
        with transaction.atomic():
            return Blob.objects.create(
                event_id=event_id,
                organization_id=organization_id,
                path=path,
                size_bytes=len(content),
                checksum=f"sha256:{hashlib.sha256(content).hexdigest()}",
                expires_at=created_at + timedelta(hours=settings.ESL_RETENTION_HOURS),
            )
    except IntegrityError:
        default_storage.delete(path)
        return Blob.objects.get(event_id=event_id)


def body_to_send(event: Event) -> bytes:
    """The event's JSON as sent: inline, or with ``data_ref`` in place of ``data`` when too large."""
    body = event.body.encode("utf-8")
    if len(body) <= settings.ESL_MAX_PAYLOAD_SIZE:
        return body
    envelope = json.loads(body)
    data = envelope.pop("data", envelope.get("data"))
    blob = blob_for_event(event.id, event.organization_id, event.created_at, data)
    data_ref = {
        "type": "blob",
        "uri": signed_blob_url(blob),
        "expires_at": isoformat_z(blob.expires_at),
        "size_bytes": blob.size_bytes,
        "checksum": blob.checksum,
    }
    metadata = envelope.pop("metadata", None)
    spilled = {**envelope, "data_ref": data_ref}
    if metadata is not None:
        spilled["metadata"] = metadata
    return to_json(spilled).encode("utf-8")


def open_blob(blob: Blob) -> bytes:
    with default_storage.open(blob.path, "rb") as handle:
        content: bytes = handle.read()
    return content
