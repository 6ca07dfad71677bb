"""Claimed copies of stored rows, for tests that send or sign without claiming first."""

import uuid

from deliveries.claims import ClaimedDelivery, ClaimedEvent, ClaimedSubscription
from sapien.events.models import Event
from subscriptions.models import Subscription


def claimed_event(event: Event) -> ClaimedEvent:
    return ClaimedEvent(
        id=event.id, type=event.type, body=event.body, organization_id=event.organization_id,
        created_at=event.created_at, recipient_id=event.recipient_id,
    )  # fmt: skip


def claimed_subscription(subscription: Subscription) -> ClaimedSubscription:
    return ClaimedSubscription(
        id=subscription.id, callback_url=subscription.callback_url, secret=subscription.secret,
        active=subscription.active, previous_secret=subscription.previous_secret,
        previous_secret_expires_at=subscription.previous_secret_expires_at,
    )  # fmt: skip


def claimed_delivery(
    event: ClaimedEvent, subscription: ClaimedSubscription, *, attempt: int = 1, tier: str = "free"
) -> ClaimedDelivery:
    """A first attempt at ``event`` for ``subscription``, as a claim would return it."""
    return ClaimedDelivery(id=uuid.uuid4(), attempt=attempt, event=event, subscription=subscription, tier=tier)
