"""End to end: a subscription's cap on requests in flight and a receiver's Retry-After hold with real workers,
a real broker and a real receiver, through the relay's fan-out and a replay alike."""

import threading
import time
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from subscriptions.models import Subscription
from tests.support.processes import wait_until
from tests.support.receiver import ReceivedRequest, Receiver, Reply

pytestmark = pytest.mark.e2e

SECRET = "a-subscriber-secret-of-some-length"


class OpenRequests:
    """A receiver's responder that answers slowly and counts how many requests were open at once, at most."""

    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self.open = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self.open += 1
            self.most = max(self.most, self.open)
        time.sleep(self.hold_seconds)
        with self._lock:
            self.open -= 1
        return 200, {}, b"ok"


def subscribe(api: APIClient, url: str, **settings) -> str:
    response = api.post(
        "/api/v1/subscriptions", {"callback_url": url, "events": ["person.*"], "secret": SECRET, **settings},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["id"]


def create_people(api: APIClient, count: int) -> None:
    for index in range(count):
        assert api.post("/api/persons", {"name": f"P{index}"}, format="json").status_code == 201


def test_a_capped_subscription_never_has_more_requests_open_than_its_cap(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform = platform_factory(ESL_DELIVERY_CONCURRENCY=8)
    platform.start_all()
    platform.worker("worker2")  # two worker processes share the cap
    counter = OpenRequests(hold_seconds=0.3)
    receiver.responder = counter
    api = make_api(make_organization())
    subscription_id = subscribe(api, receiver.url, max_in_flight=2)

    create_people(api, 12)

    receiver.wait_for(12, timeout=60)
    wait_until(
        lambda: Delivery.objects.filter(subscription_id=subscription_id, status=DeliveryStatus.SUCCEEDED).count() == 12,
        timeout=30, message="all twelve recorded",
    )  # fmt: skip
    assert counter.most <= 2
    assert len({r.header("webhook-id") for r in receiver.requests}) == 12

    # A replay of all of it goes through the same cap.
    counter.most = 0
    replay = api.post(
        f"/api/v1/subscriptions/{subscription_id}/replay",
        {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}, format="json",
    )  # fmt: skip
    assert replay.status_code in (200, 202), replay.content
    receiver.wait_for(24, timeout=60)
    assert counter.most <= 2


def test_a_retry_after_holds_back_the_whole_subscription_and_everything_arrives(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform_factory(ESL_RETRY_DELAY_MS=100).start_all()
    answered: list[int] = []

    def first_busy(request: ReceivedRequest) -> Reply:
        status = 429 if not answered else 200
        answered.append(status)
        return status, ({"Retry-After": "2"} if status == 429 else {}), b"busy" if status == 429 else b"ok"

    receiver.responder = first_busy
    api = make_api(make_organization())
    subscription_id = subscribe(api, receiver.url, max_in_flight=1)  # one at a time: the 429 comes first

    create_people(api, 5)

    receiver.wait_for(6, timeout=60)  # five, one of them twice
    wait_until(
        lambda: Delivery.objects.filter(subscription_id=subscription_id, status=DeliveryStatus.SUCCEEDED).count() == 5,
        timeout=30, message="all five recorded",
    )  # fmt: skip
    throttled_until = Subscription.objects.get(pk=subscription_id).throttled_until
    busy = DeliveryAttempt.objects.get(status_code=429)
    assert throttled_until is not None
    assert throttled_until >= busy.started_at + timedelta(seconds=2)
    later = DeliveryAttempt.objects.filter(delivery__subscription_id=subscription_id, started_at__gt=busy.started_at)
    assert later.count() == 5
    assert all(attempt.started_at >= throttled_until for attempt in later)  # none started while held back
