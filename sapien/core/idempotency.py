"""``Idempotency-Key``: the first answer to a ``POST`` or ``PATCH`` is the answer to every retry of it.

The rule, per organization and key, for ``ESL_IDEMPOTENCY_HOURS``:

- the first request claims the key with a row inserted in its own transaction, before its write; its
  successful (2xx) answer is stored in that row, so the answer commits with the write or not at all;
- a retry with the same method, path, caller and body is answered the stored answer, with no second write
  and so no second event;
- a retry sent while the first runs waits on the row's unique index until the first ends, then is answered
  (the first committed) or claims the key itself (the first rolled back: nothing was written);
- anything else sent with a used key is a 422 ``idempotency_key_reused``; a failed request stores nothing,
  so it can be retried with the same key.

``claim_key`` must run inside the request's transaction (``ATOMIC_REQUESTS``): outside one, the claim would
commit at once and a concurrent retry would get a 409 ``idempotency_key_in_use`` instead of waiting.
The DRF side, which calls these functions for every API view, is ``sapien.core.idempotent_requests``.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from rest_framework import status

from sapien.core.errors import ApplicationError, Conflict
from sapien.core.models import IdempotencyRecord
from sapien.core.transactions import assert_no_transaction

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
_KEY = re.compile(rf"[!-~]{{1,{MAX_KEY_LENGTH}}}")  # visible ASCII, no space: a UUID fits
PURGE_BATCH = 5000


class InvalidIdempotencyKey(ApplicationError):
    default_code = "invalid_idempotency_key"
    default_detail = (
        f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} visible ASCII characters without spaces, e.g. a UUID."
    )


class IdempotencyKeyReused(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = (
        f"This {HEADER} was already used with a different method, path, caller or body; "
        "use a new key for a new request."
    )


class IdempotencyKeyInUse(Conflict):
    default_code = "idempotency_key_in_use"
    default_detail = f"A request with this {HEADER} is still running; retry it in a moment."


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    content_type: str
    body: bytes


def checked_key(raw: str) -> str:
    """The key as sent, or ``InvalidIdempotencyKey``: empty, too long, spaces or non-ASCII are refused."""
    if not _KEY.fullmatch(raw):
        raise InvalidIdempotencyKey()
    return raw


def request_fingerprint(*, method: str, path: str, caller: str, body: bytes) -> str:
    """What a retry must repeat to be answered: the method, the path with its query, the caller and the raw body."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), caller.encode()):
        digest.update(hashlib.sha256(part).digest())  # each part hashed alone: no two splits of one string collide
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def expired_before(now: datetime) -> datetime:
    return now - timedelta(hours=settings.ESL_IDEMPOTENCY_HOURS)


# A fresh key is inserted; an expired one is taken over in place. A key another transaction has just claimed
# blocks this statement on the unique index until that transaction ends: that is how a concurrent retry waits.
CLAIM_SQL = """
INSERT INTO core_idempotencyrecord (organization_id, key, fingerprint, status_code, content_type, body, created_at)
VALUES (%(organization)s, %(key)s, %(fingerprint)s, NULL, '', ''::bytea, %(now)s)
ON CONFLICT ON CONSTRAINT core_idempotency_org_key DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status_code = NULL, content_type = '', body = ''::bytea,
        created_at = EXCLUDED.created_at
    WHERE core_idempotencyrecord.created_at <= %(expired_before)s
RETURNING id
"""
STORED_SQL = """
SELECT fingerprint, status_code, content_type, body FROM core_idempotencyrecord
WHERE organization_id = %(organization)s AND key = %(key)s
"""


def claim_key(*, organization_id: object, key: str, fingerprint: str, now: datetime) -> int | StoredAnswer:
    """The id of the claimed record, for ``store_answer``; or the stored answer of the same request.

    Must run inside the request's transaction (see the module docstring). Raises ``IdempotencyKeyReused``
    for a different request, ``IdempotencyKeyInUse`` for one that has not answered yet.
    One statement for a fresh key, two for a used one.
    """
    parameters: dict[str, Any] = {
        "organization": organization_id,
        "key": key,
        "fingerprint": fingerprint,
        "now": now,
        "expired_before": expired_before(now),
    }
    with connection.cursor() as cursor:
        for _ in range(2):  # the second pass: the row was purged between the two statements
            cursor.execute(CLAIM_SQL, parameters)
            claimed = cursor.fetchone()
            if claimed is not None:
                return int(claimed[0])
            cursor.execute(STORED_SQL, parameters)
            stored = cursor.fetchone()
            if stored is None:
                continue
            stored_fingerprint, status_code, content_type, body = stored
            if stored_fingerprint != fingerprint:
                raise IdempotencyKeyReused()
            if status_code is None:
                raise IdempotencyKeyInUse()
            return StoredAnswer(status_code=status_code, content_type=content_type, body=bytes(body))
    raise IdempotencyKeyInUse()


def store_answer(*, record_id: int, answer: StoredAnswer) -> None:
    """Keeps the first request's answer; in its transaction, like the claim."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE core_idempotencyrecord SET status_code = %s, content_type = %s, body = %s WHERE id = %s",
            [answer.status_code, answer.content_type, answer.body, record_id],
        )


def release_key(*, record_id: int) -> None:
    """Frees a key whose request failed without rolling back (an error answered, not raised): it may be retried."""
    IdempotencyRecord.objects.filter(pk=record_id).delete()


def purge_expired_keys(*, now: datetime) -> int:
    """Deletes the records past ``ESL_IDEMPOTENCY_HOURS`` in batches of ``PURGE_BATCH``, each its own statement.

    Must not run inside a transaction: each batch commits on its own, so no lock is held across them.
    A record it has not reached yet is ignored all the same (``claim_key`` takes an expired key over).
    """
    assert_no_transaction("purge_expired_keys")
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "DELETE FROM core_idempotencyrecord WHERE id IN ("
                " SELECT id FROM core_idempotencyrecord WHERE created_at <= %s ORDER BY created_at LIMIT %s)",
                [expired_before(now), PURGE_BATCH],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < PURGE_BATCH:
                return deleted
