from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from sapien.core.per_class import built_once_per_class


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


class FilterSet(django_filters.FilterSet):
    """A filter set whose fields never depend on the request: its form class is built once per class.

    django-filter builds a new form class, every field included, for each list request; that was about
    a fifth of a list's time. Filters whose choices come from the request must not use this class.
    """

    def get_form_class(self) -> type[forms.Form]:
        return built_once_per_class(self, "_form_class", super().get_form_class)


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 moment, compared in UTC (PostgreSQL refuses offsets beyond ±15:59 as given)."""

    field_class = UTCIsoDateTimeField
