"""A webhook carries the ``traceparent`` its event was recorded with, whichever way its delivery was claimed; an
event without one sends none."""

import uuid

import pytest
from django.db import transaction

from deliveries.claims import claim_due, handed_deliveries
from deliveries.handoff import HandedBatch
from deliveries.outbound import build_request
from deliveries.relay import relay_pending
from sapien.core.context import bind_context, clear_context
from sapien.events.outbox import record_event
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def _tracing_off(settings):
    settings.ESL_OTEL_ENABLED = False


def recorded(organization, traceparent: str | None) -> uuid.UUID:
    bind_context(correlation_id="req-1", source="api", traceparent=traceparent)
    try:
        with transaction.atomic():
            event = record_event(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
    finally:
        clear_context()
    assert event is not None
    return event.id


def headers_sent(batch) -> dict[uuid.UUID, dict[str, str]]:
    return {delivery.event.id: build_request(delivery, delivery.event.body.encode()).headers for delivery in batch}


def test_a_claimed_delivery_sends_its_event_s_traceparent_and_one_without_sends_none(organization) -> None:
    Subscription.objects.create(organization=organization, callback_url="https://hooks.example.com/",
                                events=["*"], secret="s" * 20)  # fmt: skip
    traced = recorded(organization, TRACEPARENT)
    untraced = recorded(organization, None)
    relay_pending(batch_size=10)

    batch = claim_due(batch_size=10, token=uuid.uuid4())

    sent = {delivery.event.id: delivery.event.traceparent for delivery in batch}
    assert sent == {traced: TRACEPARENT, untraced: None}
    headers = headers_sent(batch)
    assert headers[traced]["traceparent"] == TRACEPARENT
    assert not any(name.lower() == "traceparent" for name in headers[untraced])


def test_a_handed_batch_sends_it_too(organization) -> None:
    Subscription.objects.create(organization=organization, callback_url="https://hooks.example.com/",
                                events=["*"], secret="s" * 20)  # fmt: skip
    traced = recorded(organization, TRACEPARENT)
    handed: list[HandedBatch] = []
    relay_pending(batch_size=10, hand_to=handed.extend)

    (batch,) = handed
    claimed = handed_deliveries(token=batch.token, ids=batch.ids, since=batch.since, until=batch.until)

    assert headers_sent(claimed)[traced]["traceparent"] == TRACEPARENT
