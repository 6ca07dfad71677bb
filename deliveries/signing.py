"""The two signatures every webhook carries (docs/webhooks.md, "Verifying signatures").

``X-Sapien-Signature``: lowercase hex HMAC of the raw body (seed 001's receiver).
``webhook-signature``: Standard Webhooks, ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the secret's UTF-8 bytes; several space-separated during a rotation.
"""

import base64
import hashlib
import hmac
from collections.abc import Iterable


def sapien_signature(*, secret: str, body: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode("utf-8"), body, getattr(hashlib, algorithm)).hexdigest()


def standard_webhooks_signature(*, secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()).decode()
        for secret in secrets
    )
