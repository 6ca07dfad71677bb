"""With private callbacks off, nothing is sent to an internal address, whatever DNS says later."""

import uuid

import pytest
from django.utils import timezone

from deliveries import dispatch, transport
from deliveries.models import DeliveryStatus
from sapien.events.models import Event
from subscriptions.models import Subscription
from tests.support.receiver import Receiver


@pytest.fixture
def private_callbacks_off(settings):  # type: ignore[no-untyped-def]
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = False
    transport._session.reset()  # the pooled session is built for the current setting
    yield settings
    transport._session.reset()


def claimed(url: str) -> dispatch.ClaimedDelivery:
    organization_id = uuid.uuid4()
    event = Event(
        id=uuid.uuid4(), type="system.ping", body="{}", organization_id=organization_id, created_at=timezone.now()
    )
    subscription = Subscription(id=uuid.uuid4(), callback_url=url, secret="s" * 20, active=True)
    return dispatch.ClaimedDelivery(id=uuid.uuid4(), attempt=1, event=event, subscription=subscription, tier="free")


def test_an_internal_callback_is_refused_at_send_time_without_a_request(private_callbacks_off) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    try:
        (outcome,) = dispatch.send_batch([claimed(receiver.url)])
    finally:
        receiver.close()

    assert outcome.result is None
    assert outcome.status == DeliveryStatus.FAILED
    assert outcome.error.startswith("refused:")
    assert receiver.requests == []


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_connect(
    private_callbacks_off, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from subscriptions import url_safety

    receiver = Receiver()
    port = receiver.server.server_address[1]
    answers = iter([[(2, 1, 6, "", ("93.184.215.14", port))]])  # public for the pre-send check…

    def rebinding(host, port, **kwargs):  # type: ignore[no-untyped-def]
        return next(answers, [(2, 1, 6, "", ("127.0.0.1", port))])  # …loopback when connecting

    monkeypatch.setattr(url_safety.socket, "getaddrinfo", rebinding)
    try:
        (outcome,) = dispatch.send_batch([claimed(f"https://rebind.example.com:{port}/hooks")])
    finally:
        receiver.close()

    assert outcome.result is not None
    assert outcome.result.status_code is None
    assert "internal address" in outcome.result.error
    assert receiver.requests == []
