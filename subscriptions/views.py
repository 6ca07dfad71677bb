from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from sapien.core.errors import ApplicationError
from sapien.core.views import OrganizationScopedViewSet
from subscriptions.models import Subscription
from subscriptions.selectors import subscription_filter_test
from subscriptions.serializers import (
    CreatedSubscriptionSerializer,
    ExampleSendSerializer,
    FilterTestResultSerializer,
    FilterTestSerializer,
    PingSerializer,
    RotatedSecretSerializer,
    RotateSecretSerializer,
    SubscriptionSerializer,
)
from subscriptions.services import (
    missed_while_disabled,
    subscription_create,
    subscription_rotate_secret,
    subscription_send_example,
    subscription_update,
)


class SubscriptionViewSet(OrganizationScopedViewSet):
    queryset = Subscription.objects.all()
    serializer_class = SubscriptionSerializer
    read_scope = "events:read"
    write_scope = "events:subscribe"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_scopes = {"test_filter": "events:read"}  # a POST that changes nothing

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
        missed = None
        if serializer.validated_data.get("active") is True and not instance.active:
            missed = missed_while_disabled(instance, now=timezone.now())
        subscription = subscription_update(subscription=instance, **serializer.validated_data)
        body = dict(self.get_serializer(subscription).data)
        if missed is not None:
            body["missed_while_disabled"] = missed  # re-enabled: here is what a replay would catch up
        return Response(body)

    @extend_schema(request=RotateSecretSerializer, responses={200: RotatedSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        serializer = RotateSecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription = subscription_rotate_secret(
            subscription=self.get_object(), secret=serializer.validated_data.get("secret")
        )
        return Response(
            {"secret": subscription.secret, "previous_secret_expires_at": subscription.previous_secret_expires_at}
        )

    @extend_schema(request=FilterTestSerializer, responses={200: FilterTestResultSerializer})
    @action(detail=True, methods=["post"], url_path="test-filter")
    def test_filter(self, request: Request, pk: str | None = None) -> Response:
        """Whether an event would pass a payload filter, decided as the relay decides it; changes nothing."""
        subscription = self.get_object()  # first: another organization's is a 404, whatever the body
        serializer = FilterTestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        given = serializer.validated_data
        result = subscription_filter_test(
            subscription=subscription,
            payload_filter=given.get("filter", ...),
            event=given.get("event"),
            event_id=given.get("event_id"),
        )
        return Response(FilterTestResultSerializer(result).data)

    @extend_schema(request=ExampleSendSerializer, responses={202: PingSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Sends a type's example (``system.ping`` by default) to this subscription alone, as a real delivery."""
        subscription = self.get_object()
        serializer = ExampleSendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = subscription_send_example(subscription=subscription, event_type=serializer.validated_data["type"])
        if event is None:
            raise ApplicationError("Events are disabled on this server (ESL_ENABLED=false).", code="events_disabled")
        return Response({"event_id": str(event.id), "type": event.type}, status=status.HTTP_202_ACCEPTED)
