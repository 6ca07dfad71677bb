"""Actions on deliveries that people ask for: redelivery."""

from django.db import transaction
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from sapien.events.wakeups import DELIVER_DUE, WakeUp, wakeup_request


@transaction.atomic
def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Starts a new attempt chain now. A worker still holding the old claim can no longer record over it."""
    delivery.status = DeliveryStatus.PENDING
    delivery.attempt_count = 0
    delivery.next_attempt_at = timezone.now()
    delivery.claim_token = None
    delivery.claimed_until = None
    delivery.completed_at = None
    delivery.save(
        update_fields=[
            "status", "attempt_count", "next_attempt_at", "claim_token", "claimed_until", "completed_at", "updated_at",
        ]
    )  # fmt: skip
    transaction.on_commit(lambda: wakeup_request(WakeUp(DELIVER_DUE)))  # through the relay (sapien/events/wakeups.py)
    return delivery
