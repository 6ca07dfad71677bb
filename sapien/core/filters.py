from datetime import UTC, datetime
from typing import Any

import django_filters
from django.db.models import QuerySet


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 moment, compared in UTC (PostgreSQL refuses offsets beyond ±15:59 as given)."""

    def filter(self, qs: QuerySet[Any], value: datetime | None) -> QuerySet[Any]:
        return super().filter(qs, value.astimezone(UTC) if value is not None else value)
