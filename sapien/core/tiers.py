"""What each tier allows: subscriptions, retries, events per hour (docs/configuration.md, "Tiers")."""

from dataclasses import dataclass

from django.conf import settings

from sapien.core.models import Tier


@dataclass(frozen=True)
class TierLimits:
    max_subscriptions: int | None  # None: unlimited
    retry_budget: int  # retries after the first attempt
    events_per_hour: int


def limits_for(tier: str) -> TierLimits:
    if tier == Tier.FREE:
        return TierLimits(max_subscriptions=5, retry_budget=3, events_per_hour=1_000)
    if tier == Tier.ENTERPRISE:
        return TierLimits(max_subscriptions=None, retry_budget=10, events_per_hour=100_000)
    return TierLimits(
        max_subscriptions=25,
        retry_budget=settings.ESL_RETRY_ATTEMPTS,
        events_per_hour=settings.RATE_LIMIT_EVENTS_HOUR,
    )
