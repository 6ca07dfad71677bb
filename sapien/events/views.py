from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, viewsets
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from sapien.core.filters import FilterSet, UTCDateTimeFilter
from sapien.events.models import Event
from sapien.events.schemas.openapi import WEBHOOK_EVENT_REFERENCE
from sapien.events.selectors import events_of, with_relayed
from sapien.events.type_catalog import event_type_catalog, event_type_entry


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


@extend_schema_field(WEBHOOK_EVENT_REFERENCE)
class EventBodyField(serializers.JSONField):
    """An event body, typed in the OpenAPI document as one of the event components."""


class ProducedBySerializer(serializers.Serializer):
    scopes = serializers.ListField(child=serializers.CharField(), help_text="API scopes whose calls cause it.")
    sources = serializers.ListField(child=serializers.CharField(), help_text="Its metadata.source values.")


class EventTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    description = serializers.CharField()
    family = serializers.CharField(help_text="The subscription pattern of its family, such as person.*.")
    version = serializers.CharField(help_text="The body's version field.")
    counts_against_quota = serializers.BooleanField(help_text="False for system.* events.")
    produced_by = ProducedBySerializer()
    schema = serializers.DictField(help_text="The JSON Schema (draft 2020-12, or draft-07) of the body.")
    example = EventBodyField(help_text="A body that validates against the schema; what an example send delivers.")


class OnePage(BasePagination):
    """The whole catalog in one page, in the shape of every list: ``next`` and ``previous`` are always null."""

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        always_null = {"type": "string", "nullable": True, "description": "Always null: the catalog is one page."}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": always_null, "previous": always_null, "results": schema},
        }


class EventTypeViewSet(viewsets.ViewSet):
    """Every event type Sapien emits, with the JSON Schema of its body and an example body."""

    read_scope = "events:read"
    lookup_field = "type"
    lookup_value_regex = r"[^/]+"
    pagination_class = OnePage

    @extend_schema(responses={200: EventTypeSerializer})
    def list(self, request: Request) -> Response:
        return Response({"next": None, "previous": None, "results": event_type_catalog()})

    @extend_schema(responses={200: EventTypeSerializer})
    def retrieve(self, request: Request, type: str) -> Response:
        try:
            return Response(event_type_entry(type))
        except KeyError:
            shown = repr(type) if len(type) <= 64 else f"{type[:64]!r}…"
            raise exceptions.NotFound(f"No event type {shown}: GET /api/v1/event-types lists them.") from None
