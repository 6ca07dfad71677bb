"""Retry policy as pure functions: what an outcome means, and when to try again."""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from django.conf import settings

from deliveries.models import DeliveryStatus
from sapien.core.models import Tier
from sapien.core.tiers import limits_for

if TYPE_CHECKING:  # claims records outcomes, so it imports this module; the relay reads the policy, never the transport
    from deliveries.claims import ClaimedDelivery
    from deliveries.transport import DeliveryResult


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


def longest_retry_chain() -> timedelta:
    """The longest a delivery can stay pending between its first attempt and its last: the largest tier
    budget of retries, each at its longest delay (+20 % jitter, within the cap)."""
    retries = max(limits_for(tier).retry_budget for tier in Tier)
    cap = settings.ESL_RETRY_MAX_DELAY_MS / 1000
    return timedelta(
        seconds=sum(min(settings.ESL_RETRY_DELAY_MS / 1000 * 2 ** (n - 1) * 1.2, cap) for n in range(1, retries + 1))
    )


def next_attempt_time(attempt_number: int, *, now: datetime, retry_after: float | None = None) -> datetime:
    return now + timedelta(seconds=backoff_seconds(attempt_number, retry_after=retry_after))


@dataclass(frozen=True)
class Outcome:
    """What becomes of a claimed delivery: its new status, when to try again, and the attempt if one was made."""

    delivery: "ClaimedDelivery"
    result: "DeliveryResult | None"  # None: nothing was sent
    status: str
    next_attempt_at: datetime | None
    error: str


def decide(delivery: "ClaimedDelivery", result: "DeliveryResult", *, now: datetime) -> Outcome:
    """What an attempt's result means for its delivery: done, retry later, or failed for good.

    2xx succeeds; 410 fails it and deactivates the subscription; past the tier's retry budget (or to a disabled
    subscription) it fails;
    otherwise it is retried after the backoff, or after a 429's or 503's ``Retry-After`` if longer.
    """
    next_at: datetime | None = None
    error = result.error or f"HTTP {result.status_code}"
    if is_success(result.status_code):
        status, error = DeliveryStatus.SUCCEEDED, ""
    elif deactivates_subscription(result.status_code):
        status, error = DeliveryStatus.FAILED, "410 Gone: subscription deactivated"
    elif delivery.attempt > limits_for(delivery.tier).retry_budget or not delivery.subscription.active:
        # A disabled subscription is sent only pings addressed to it (a test, its probe): one attempt each.
        status = DeliveryStatus.FAILED
    else:
        retry_after = parse_retry_after(result.retry_after, now=now) if result.status_code in (429, 503) else None
        status, next_at = DeliveryStatus.PENDING, next_attempt_time(delivery.attempt, now=now, retry_after=retry_after)
    return Outcome(delivery=delivery, result=result, status=status, next_attempt_at=next_at, error=error)
