from typing import Any

import django_filters
from rest_framework import serializers, viewsets

from sapien.core.filters import FilterSet, UTCDateTimeFilter
from sapien.events.models import Event
from sapien.events.selectors import events_of, with_relayed


class EventSerializer(serializers.ModelSerializer):
    payload = serializers.JSONField(read_only=True)
    relayed = serializers.BooleanField(read_only=True, help_text="False while the event waits in the outbox.")

    class Meta:
        model = Event
        fields = ["id", "type", "created_at", "relayed", "payload"]


class EventFilter(FilterSet):
    type = django_filters.CharFilter(field_name="type")
    since = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["type", "since", "until"]


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    """The organization's event history within the retention window, newest first."""

    serializer_class = EventSerializer
    filterset_class = EventFilter
    read_scope = "events:read"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Event.objects.none()
        return with_relayed(events_of(self.request.organization))  # type: ignore[attr-defined]
