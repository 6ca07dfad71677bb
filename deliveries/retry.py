"""Retry policy as pure functions: what an outcome means, and when to try again."""

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings


def is_success(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def deactivates_subscription(status_code: int | None) -> bool:
    return status_code == 410


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait, from a ``Retry-After`` of seconds or an HTTP date; ``None`` when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(
    attempt_number: int, *, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Delay before the retry that follows attempt ``attempt_number`` (1-based).

    ``ESL_RETRY_DELAY_MS`` doubled each time, ±20 % jitter, capped by
    ``ESL_RETRY_MAX_DELAY_MS``; a receiver's ``Retry-After`` is honoured within the cap.
    """
    base = settings.ESL_RETRY_DELAY_MS / 1000 * 2 ** (attempt_number - 1)
    jitter = (rng or random).uniform(0.8, 1.2)
    delay = base * jitter
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.ESL_RETRY_MAX_DELAY_MS / 1000)


def next_attempt_time(attempt_number: int, *, now: datetime, retry_after: float | None = None) -> datetime:
    return now + timedelta(seconds=backoff_seconds(attempt_number, retry_after=retry_after))
