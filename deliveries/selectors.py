"""Reading the delivery log: one subscription's deliveries, newest first by their event's time.

Every query names the partition key (``event_created_at``), so it reads only the partitions of the days
it needs: the log's page from the retained days, then the page's events and attempts from the page's own.
"""

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import QuerySet

from deliveries.models import Delivery, DeliveryAttempt
from sapien.events.models import Event
from subscriptions.models import Subscription


def deliveries_of(subscription: Subscription) -> QuerySet[Delivery]:
    """The log, without events or attempts: attach them to a page with ``with_events_and_attempts``.

    It shows what retention has not dropped yet, so a delivery failed at the end of retention stays
    visible for a while (``retention.FAILED_VISIBLE``)."""
    return Delivery.objects.filter(subscription=subscription).order_by("-event_created_at", "-id")


def with_events_and_attempts(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """The deliveries, each with its ``event`` and its ``attempt_list`` (oldest first): two queries in all,
    pruned to the partitions of the deliveries' days."""
    deliveries = list(deliveries)
    if not deliveries:
        return deliveries
    days = {delivery.event_created_at for delivery in deliveries}
    events = Event.objects.filter(id__in={delivery.event_id for delivery in deliveries}, created_at__in=days)
    event_by_id = {event.id: event for event in events}
    attempts: dict[object, list[DeliveryAttempt]] = defaultdict(list)
    for attempt in DeliveryAttempt.objects.filter(
        delivery_id__in=[delivery.id for delivery in deliveries], event_created_at__in=days
    ).order_by("started_at", "id"):
        attempts[attempt.delivery_id].append(attempt)
    for delivery in deliveries:
        delivery.event = event_by_id[delivery.event_id]  # dropped with its deliveries, never before them
        delivery.attempt_list = attempts[delivery.id]  # type: ignore[attr-defined]
    return deliveries
