"""Failed token requests, counted per client id, per username and per source address.

What counts: every failed request (a 4xx answer) against its address; a refused client
(``invalid_client``) against the client id; a refused password grant (``invalid_grant``)
against the username, whatever its case. A user's wrong password does not count against
the client, so that one user cannot lock every user of an app out.

Once a client id or a username has ``OAUTH_FAILED_ATTEMPTS_LIMIT`` failures, or an address
``OAUTH_FAILED_ATTEMPTS_ADDRESS_LIMIT``, within ``OAUTH_FAILED_ATTEMPTS_WINDOW`` seconds of
its first failure, every request naming it is refused until that window ends, correct or
not: the check comes before any secret or password is hashed, so a throttled try costs one
read. (A limit of 0 turns that dimension off.) Requests in flight when the limit is reached
are still answered, so a burst gets at most one try more per web worker.

The counts live where every web process sees them: in Redis when the default cache is Redis
(``CACHE_URL``), else in PostgreSQL (``TokenFailureCount``). Keys hold a SHA-256 of the
value, never a client id, username or address in clear.
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from sapien.core.models import TokenFailureCount

logger = logging.getLogger(__name__)

CLIENT_ID, USERNAME, ADDRESS = "client_id", "username", "address"
# Besides the address, which every failure counts against.
_COUNTED_BY_ERROR = {"invalid_client": CLIENT_ID, "invalid_grant": USERNAME}


@dataclass(frozen=True)
class TokenAttempt:
    """Who a token (or revocation) request speaks for: what its failures count against.

    ``client_ids``: those of the ``Authorization: Basic`` header and of the form, when both
    are given, since django-oauth-toolkit tries the form's after the header's.
    """

    address: str
    client_ids: tuple[str, ...] = ()
    username: str | None = None  # password grant only

    def subjects(self) -> list[tuple[str, str]]:
        named = [(ADDRESS, self.address), *((CLIENT_ID, client_id) for client_id in self.client_ids)]
        if self.username:
            named.append((USERNAME, self.username.lower()))
        return [(dimension, value) for dimension, value in dict.fromkeys(named) if value and _limit(dimension) > 0]


@dataclass(frozen=True)
class Throttled:
    dimensions: tuple[str, ...]
    retry_after: int  # seconds until the last of their windows ends


def throttled(attempt: TokenAttempt) -> Throttled | None:
    """Whether ``attempt`` must be refused without being looked at; logs the refusal (no credential)."""
    keys = _keys(attempt.subjects())
    if not keys:
        return None
    now = time.time()
    counts = _counts().get_many([key for _, key in keys], now=now)
    exceeded: dict[str, float] = {}
    for dimension, key in keys:
        if key in counts and counts[key].count >= _limit(dimension):
            exceeded[dimension] = max(exceeded.get(dimension, 0.0), counts[key].window_end)
    if not exceeded:
        return None
    refusal = Throttled(dimensions=tuple(exceeded), retry_after=max(1, math.ceil(max(exceeded.values()) - now)))
    logger.warning(
        "Token request throttled: too many failed attempts by %s.",
        " and ".join(exceeded),
        extra={
            "throttled_by": list(exceeded),
            "client_id": ", ".join(client_id[:100] for client_id in attempt.client_ids),
            "remote_addr": attempt.address,
            "retry_after": refusal.retry_after,
        },
    )
    return refusal


def record_failure(attempt: TokenAttempt, *, error: str | None) -> None:
    """Counts a request the OAuth server refused with ``error`` (its RFC 6749 error code, if any)."""
    counted = {ADDRESS, _COUNTED_BY_ERROR.get(error or "")}
    keys = sorted(key for dimension, key in _keys(attempt.subjects()) if dimension in counted)
    if keys:
        _counts().increment(keys, window=_window(), now=time.time())


def _limit(dimension: str) -> int:
    if dimension == ADDRESS:
        return int(settings.OAUTH_FAILED_ATTEMPTS_ADDRESS_LIMIT)
    return int(settings.OAUTH_FAILED_ATTEMPTS_LIMIT)


def _window() -> int:
    return max(1, int(settings.OAUTH_FAILED_ATTEMPTS_WINDOW_SECONDS))


def _keys(subjects: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(dimension, key)`` for each subject: the key names the dimension and a digest of the value."""
    return [
        (dimension, f"{dimension}:{hashlib.sha256(value.encode('utf-8')).hexdigest()}") for dimension, value in subjects
    ]


@dataclass(frozen=True)
class _Count:
    count: int
    window_end: float  # epoch seconds


class _Counts(Protocol):
    def get_many(self, keys: list[str], *, now: float) -> dict[str, _Count]:
        """The counts of ``keys`` whose window has not ended at ``now``."""

    def increment(self, keys: list[str], *, window: int, now: float) -> None:
        """Adds one failure to each key; a key without a window in force starts one at ``now``."""


class _CacheCounts:
    """In a cache shared by every process (Redis): the count (``add`` then ``incr``, each atomic)
    and, beside it, when its window ends; both expire with the window."""

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def get_many(self, keys: list[str], *, now: float) -> dict[str, _Count]:
        found = self.cache.get_many([*keys, *(f"{key}:ends" for key in keys)])
        return {
            key: _Count(count=int(found[key]), window_end=float(found.get(f"{key}:ends", now)))
            for key in keys
            if key in found
        }

    def increment(self, keys: list[str], *, window: int, now: float) -> None:
        for key in keys:
            if not self.cache.add(key, 1, window):
                try:
                    self.cache.incr(key)
                    continue
                except ValueError:  # its window ended between the two calls
                    self.cache.add(key, 1, window)
            self.cache.set(f"{key}:ends", now + window, window)


class _DatabaseCounts:
    """In PostgreSQL: one upsert for every key of a failure, in key order (so two never deadlock)."""

    table = TokenFailureCount._meta.db_table

    def get_many(self, keys: list[str], *, now: float) -> dict[str, _Count]:
        rows = TokenFailureCount.objects.filter(key__in=keys, expires_at__gt=datetime.fromtimestamp(now, tz=UTC))
        return {row.key: _Count(count=row.count, window_end=row.expires_at.timestamp()) for row in rows}

    def increment(self, keys: list[str], *, window: int, now: float) -> None:
        moment = datetime.fromtimestamp(now, tz=UTC)
        window_end = datetime.fromtimestamp(now + window, tz=UTC)
        rows = ", ".join(["(%s, 1, %s)"] * len(keys))
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO {self.table} ("key", "count", "expires_at") VALUES {rows} '
                f'ON CONFLICT ("key") DO UPDATE SET '
                f'"count" = CASE WHEN {self.table}."expires_at" <= %s THEN 1 ELSE {self.table}."count" + 1 END, '
                f'"expires_at" = CASE WHEN {self.table}."expires_at" <= %s '
                f'THEN EXCLUDED."expires_at" ELSE {self.table}."expires_at" END',
                [*(value for key in keys for value in (key, window_end)), moment, moment],
            )
            # Ended windows; rows another request holds are left for the next failure.
            cursor.execute(
                f'DELETE FROM {self.table} WHERE "key" IN '
                f'(SELECT "key" FROM {self.table} WHERE "expires_at" <= %s FOR UPDATE SKIP LOCKED)',
                [moment],
            )


def _counts() -> _Counts:
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        return _CacheCounts(cache)
    return _DatabaseCounts()
