"""The hourly event quota of an organization's tier (CONTRACT §6).

Windows are clock hours in UTC. The relay counts events as it fans them out;
events past the quota are still recorded and relayed, but their deliveries wait
for the next window: nothing is dropped. ``system.*`` events are never counted
and never held back.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from sapien.core.models import Organization
from sapien.core.tiers import limits_for
from sapien.events.models import QuotaUsage

WINDOW = timedelta(hours=1)
WARNING_SHARE = 0.8


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


def is_counted(event_type: str) -> bool:
    return not event_type.startswith("system.")


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


COUNT_SQL = """
INSERT INTO events_quotausage (organization_id, window_start, events)
SELECT * FROM unnest(%(orgs)s::uuid[], %(windows)s::timestamptz[], %(counts)s::int[])
ON CONFLICT (organization_id, window_start) DO UPDATE SET events = events_quotausage.events + EXCLUDED.events
RETURNING organization_id, window_start, events
"""


def count_events(counts: dict[tuple[Any, datetime], int]) -> list[Counted]:
    """Adds relayed events to their windows in one statement; returns each window's count before and after."""
    if not counts:
        return []
    keys = list(counts)
    with connection.cursor() as cursor:
        cursor.execute(
            COUNT_SQL,
            {"orgs": [k[0] for k in keys], "windows": [k[1] for k in keys], "counts": [counts[k] for k in keys]},
        )
        rows = cursor.fetchall()
    tiers = dict(Organization.objects.filter(pk__in={k[0] for k in keys}).values_list("pk", "tier"))
    return [
        Counted(
            organization_id=org,
            window_start=start,
            before=after - counts[(org, start)],
            after=after,
            limit=limits_for(tiers[org]).events_per_hour,
        )
        for org, start, after in rows
    ]
