from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 moment, converted to UTC as it is read; one that UTC cannot show is a validation error."""

    def to_python(self, value: Any) -> datetime | None:
        moment: datetime | None = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError as exc:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
            raise forms.ValidationError(
                "Must be a moment between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in UTC.", code="out_of_range"
            ) from exc


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 moment, compared in UTC (PostgreSQL refuses offsets beyond ±15:59 as given)."""

    field_class = UTCIsoDateTimeField
