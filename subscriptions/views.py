from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from sapien.core.errors import ApplicationError
from sapien.core.views import OrganizationScopedViewSet
from subscriptions.models import Subscription
from subscriptions.serializers import CreatedSubscriptionSerializer, PingSerializer, SubscriptionSerializer
from subscriptions.services import subscription_create, subscription_ping, subscription_update


class SubscriptionViewSet(OrganizationScopedViewSet):
    queryset = Subscription.objects.all()
    serializer_class = SubscriptionSerializer
    read_scope = "events:read"
    write_scope = "events:subscribe"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(responses={201: CreatedSubscriptionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription = subscription_create(organization=request.organization, **serializer.validated_data)  # type: ignore[attr-defined]
        return Response(CreatedSubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance: Subscription = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        subscription = subscription_update(subscription=instance, **serializer.validated_data)
        return Response(self.get_serializer(subscription).data)

    @extend_schema(request=None, responses={202: PingSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        event = subscription_ping(subscription=self.get_object())
        if event is None:
            raise ApplicationError("Events are disabled on this server (ESL_ENABLED=false).", code="events_disabled")
        return Response({"event_id": str(event.id), "type": event.type}, status=status.HTTP_202_ACCEPTED)
