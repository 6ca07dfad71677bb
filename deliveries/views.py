from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deliveries.blobs import is_valid_blob_signature, open_blob
from deliveries.filters import DeliveryFilter
from deliveries.health import subscription_health_report
from deliveries.models import Blob, Delivery, DeliveryStatus
from deliveries.replay import events_replay
from deliveries.selectors import deliveries_of, with_events_and_attempts
from deliveries.serializers import DeliverySerializer, SubscriptionStatsSerializer
from deliveries.services import delivery_redeliver
from subscriptions.models import Subscription


class SubscriptionDeliveriesMixin:
    """The delivery log of one subscription of the caller's organization."""

    kwargs: dict[str, Any]

    def get_subscription(self) -> Subscription:
        return get_object_or_404(
            Subscription,
            pk=self.kwargs["subscription_id"],
            organization=self.request.organization,  # type: ignore[attr-defined]
        )

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Delivery.objects.none()
        return deliveries_of(self.get_subscription())

    def get_object(self) -> Delivery:
        return with_events_and_attempts([super().get_object()])[0]  # type: ignore[misc]


class DeliveryListView(SubscriptionDeliveriesMixin, generics.ListAPIView):
    serializer_class = DeliverySerializer
    cursor_ordering = ("-event_created_at", "-id")  # the log's order: its event's time (sapien.core.pagination)
    filterset_class = DeliveryFilter
    read_scope = "events:read"

    def paginate_queryset(self, queryset: QuerySet[Any, Any] | Sequence[Any]) -> list[Any] | None:
        page = super().paginate_queryset(queryset)
        return None if page is None else with_events_and_attempts(page)


class DeliveryDetailView(SubscriptionDeliveriesMixin, generics.RetrieveAPIView):
    serializer_class = DeliverySerializer
    lookup_url_kwarg = "delivery_id"
    read_scope = "events:read"


class RedeliverView(SubscriptionDeliveriesMixin, generics.GenericAPIView):
    serializer_class = DeliverySerializer
    lookup_url_kwarg = "delivery_id"
    write_scope = "events:subscribe"

    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delivery: Delivery = self.get_object()
        delivery = delivery_redeliver(delivery=delivery)
        (delivery,) = with_events_and_attempts([delivery])
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class BlobView(APIView):
    """A spilled payload. The signed URL is the credential: no token is needed, or accepted in its place."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("expires", int, required=True), OpenApiParameter("signature", str, required=True)],
        responses={(200, "application/json"): dict},
    )
    def get(self, request: Request, blob_id: str) -> HttpResponse:
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        if not is_valid_blob_signature(blob_id, expires, signature):
            raise PermissionDenied("This blob link is invalid or has expired.")
        blob = get_object_or_404(Blob, pk=blob_id)
        response = HttpResponse(open_blob(blob), content_type="application/json")
        response["X-Checksum"] = blob.checksum
        return response


class ReplaySerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(required=False)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)
    dry_run = serializers.BooleanField(default=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        data.setdefault("until", timezone.now())
        if data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return data


class ReplayView(SubscriptionDeliveriesMixin, generics.GenericAPIView):
    """Redeliver every event of a time range still within retention; ``dry_run`` only counts them."""

    serializer_class = ReplaySerializer
    write_scope = "events:admin"

    @extend_schema(request=ReplaySerializer, responses={200: dict, 202: dict})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        subscription = self.get_subscription()
        serializer = ReplaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = events_replay(
            subscription=subscription, since=data["since"], until=data["until"], status=data.get("status"),
            dry_run=data["dry_run"],
        )  # fmt: skip
        body = {"events": result.events, "dry_run": result.dry_run, "since": data["since"], "until": data["until"]}
        return Response(body, status=status.HTTP_200_OK if result.dry_run else status.HTTP_202_ACCEPTED)


class SubscriptionStatsView(SubscriptionDeliveriesMixin, generics.GenericAPIView):
    """A subscription's health: the last hour's and day's deliveries and durations, its last success and failure,
    its run of failures and how near disabling is, its probe. Costs the same however long the history."""

    serializer_class = SubscriptionStatsSerializer
    read_scope = "events:read"

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        report = subscription_health_report(self.get_subscription(), now=timezone.now())
        return Response(SubscriptionStatsSerializer(report).data)
