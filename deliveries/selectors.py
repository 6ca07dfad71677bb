"""Reading the delivery log."""

from django.db.models import Prefetch, QuerySet

from deliveries.models import Delivery, DeliveryAttempt
from subscriptions.models import Subscription


def deliveries_of(subscription: Subscription) -> QuerySet[Delivery]:
    return (
        Delivery.objects.filter(subscription=subscription)
        .select_related("event")
        .prefetch_related(Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("started_at", "id")))
        .order_by("-created_at", "-id")
    )
