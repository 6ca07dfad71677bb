"""The hourly event quota of an organization's tier (docs/operations.md, "Hourly event quotas").

Windows are clock hours in UTC. The relay counts events as it fans them out;
events past the quota are still recorded and relayed, but their deliveries wait
for the next window: nothing is dropped. ``system.*`` events are never counted
and never held back.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from sapien.core.models import Organization, Tier
from sapien.core.tiers import limits_for
from sapien.events.models import QuotaUsage

WINDOW = timedelta(hours=1)
WARNING_SHARE = 0.8
UNCOUNTED_PREFIX = "system."


@dataclass(frozen=True)
class QuotaStatus:
    limit: int
    used: int
    window_start: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def resets_at(self) -> datetime:
        return self.window_start + WINDOW


def window_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def window_start_sql(moment: str) -> str:
    """SQL for ``window_start`` of the timestamptz column ``moment``."""
    return f"date_trunc('hour', {moment}, 'UTC')"


def counted_sql(event_type: str) -> str:
    """SQL that is true when the event type in the column ``event_type`` counts against the quota."""
    return f"NOT starts_with({event_type}, '{UNCOUNTED_PREFIX}')"


def quota_limits() -> dict[str, int]:
    """Events per hour by tier."""
    return {tier: limits_for(tier).events_per_hour for tier in Tier.values}


def quota_status(organization: Organization, now: datetime | None = None) -> QuotaStatus:
    start = window_start(now or timezone.now())
    usage = QuotaUsage.objects.filter(organization=organization, window_start=start)
    used = usage.values_list("events", flat=True).first()
    return QuotaStatus(limit=limits_for(organization.tier).events_per_hour, used=used or 0, window_start=start)


@dataclass(frozen=True)
class Counted:
    organization_id: Any
    window_start: datetime
    before: int
    after: int
    limit: int
