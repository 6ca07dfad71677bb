"""End to end: the web asks the relay for its wake-ups, and the relay publishes them to the workers.

No beat runs here, so no sweep: a redelivery reaches the receiver only through the relay's publishing of the
wake-up the request asked for.
"""

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from sapien.events.models import OutboxEntry
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.platform import BROKERS
from tests.support.processes import wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("broker", BROKERS)
def test_a_redelivery_reaches_the_receiver_through_the_relays_wake_up(
    broker: str, platform_factory, receiver: Receiver, organization, api
) -> None:
    with transaction.atomic():
        event = record_event(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
    assert event is not None
    platform = platform_factory(broker)
    platform.relay()
    platform.worker()
    wait_until(lambda: not OutboxEntry.objects.exists(), message="the event relayed, to no subscription yet")
    subscription = Subscription.objects.create(
        organization=organization, callback_url=receiver.url, events=["*"], secret="s" * 20
    )
    delivery = Delivery.objects.create(
        organization=organization, event=event, event_created_at=event.created_at, event_type=event.type,
        subscription=subscription, status=DeliveryStatus.FAILED, attempt_count=4, completed_at=timezone.now(),
    )  # fmt: skip

    answer = api.post(f"/api/v1/subscriptions/{subscription.id}/deliveries/{delivery.id}/redeliver")

    assert answer.status_code == 202
    (request,) = receiver.wait_for(1, timeout=20)
    assert request.header("X-Sapien-Delivery") == str(delivery.id)
    assert request.header("X-Sapien-Attempt") == "1"
