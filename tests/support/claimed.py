"""Claimed copies of stored rows, for tests that send or sign without claiming first, and a synchronous send."""

import uuid

from django.utils import timezone

from deliveries.claims import ClaimedDelivery, ClaimedEvent, ClaimedSubscription
from deliveries.dispatch import senders
from deliveries.outbound import prepare_batch
from deliveries.retry import Outcome, decide
from sapien.events.models import Event
from subscriptions.models import Subscription


def claimed_event(event: Event) -> ClaimedEvent:
    return ClaimedEvent(
        id=event.id, type=event.type, body=event.body, organization_id=event.organization_id,
        created_at=event.created_at, recipient_id=event.recipient_id, traceparent=event.traceparent,
    )  # fmt: skip


def claimed_subscription(subscription: Subscription) -> ClaimedSubscription:
    return ClaimedSubscription(
        id=subscription.id, callback_url=subscription.callback_url, secret=subscription.secret,
        active=subscription.active, previous_secret=subscription.previous_secret,
        previous_secret_expires_at=subscription.previous_secret_expires_at, headers=subscription.headers,
    )  # fmt: skip


def claimed_delivery(
    event: ClaimedEvent, subscription: ClaimedSubscription, *, attempt: int = 1, tier: str = "free"
) -> ClaimedDelivery:
    """A first attempt at ``event`` for ``subscription``, as a claim would return it."""
    return ClaimedDelivery(id=uuid.uuid4(), attempt=attempt, event=event, subscription=subscription, tier=tier)


def send_claimed(batch: list[ClaimedDelivery]) -> list[Outcome]:
    """Sends every claimed delivery through the process's sending threads, waits for all, and decides each."""
    outcomes, to_send = prepare_batch(batch)
    pool = senders.get()
    results = [future.result() for future in [pool.submit(request) for _, request in to_send]]
    now = timezone.now()
    outcomes.extend(decide(delivery, result, now=now) for (delivery, _), result in zip(to_send, results, strict=True))
    return outcomes
