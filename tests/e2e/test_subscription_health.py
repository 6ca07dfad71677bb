"""End to end: a failing receiver's owner is told once that it fails and once that it recovered; a disabled
subscription that opted in is probed with signed pings at growing intervals until its receiver answers."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryStatus
from sapien.core.models import Tier
from subscriptions.health import subscriptions_probe_due
from subscriptions.models import Subscription
from subscriptions.services import subscription_disable
from tests.support.processes import wait_until
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.e2e

SECRET = "a-subscriber-secret-of-some-length"
MONITOR_SECRET = "the-monitoring-secret-of-some-length"


def subscribe(api: APIClient, url: str, events: list[str], secret: str = SECRET, **fields) -> dict:
    body = {"callback_url": url, "events": events, "secret": secret, **fields}
    response = api.post("/api/v1/subscriptions", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def of_type(event_type: str):
    return lambda request: request.header("X-Sapien-Event") == event_type


def verified(request, secret: str) -> dict:
    """The request's event, once both signatures checked out."""
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
    assert Webhook(secret.encode()).verify(request.body, request.headers)
    return json.loads(request.body)


def test_a_failing_receiver_is_told_failing_once_then_recovered_once(
    platform_factory, make_organization, make_api
) -> None:
    platform_factory(ESL_RETRY_DELAY_MS=50, ESL_DISABLE_AFTER_FAILURES=4, ESL_FAILING_NOTICE_SHARE=0.5).start_all()
    failing, monitor = Receiver(responder=always(500)), Receiver()
    try:
        api = make_api(make_organization(tier=Tier.FREE))  # three retries: four attempts per delivery
        watched = subscribe(api, failing.url, ["person.*"])
        subscribe(api, monitor.url, ["system.*"], secret=MONITOR_SECRET)

        for failed, name in enumerate(("Ada", "Grace", "Edsger"), start=1):  # one after the other: a run of 1, 2, 3
            api.post("/api/persons", {"name": name}, format="json")
            wait_until(
                lambda failed=failed: Subscription.objects.get(pk=watched["id"]).consecutive_failures == failed,
                timeout=30, message=f"{failed} deliveries failed",
            )  # fmt: skip
        (notice,) = monitor.wait_for(1, predicate=of_type("system.subscription.failing"))
        failing_event = verified(notice, MONITOR_SECRET)
        assert failing_event["data"]["subscription_id"] == watched["id"]
        assert failing_event["data"]["consecutive_failures"] == 2  # half of the disabling limit
        assert failing_event["data"]["last_failure_reason"] == "HTTP 500"

        failing.responder = always(200)
        api.post("/api/persons", {"name": "Barbara"}, format="json")
        (notice,) = monitor.wait_for(1, predicate=of_type("system.subscription.recovered"))
        recovered_event = verified(notice, MONITOR_SECRET)
        assert recovered_event["data"]["subscription_id"] == watched["id"]
        assert (recovered_event["data"]["active"], recovered_event["data"]["probe"]) == (True, False)

        api.post("/api/persons", {"name": "Alan"}, format="json")  # a second success: nothing more to tell
        wait_until(
            lambda: Delivery.objects.filter(subscription_id=watched["id"], status=DeliveryStatus.SUCCEEDED).count()
            == 2,
            message="both successes recorded",
        )  # fmt: skip
        notices = [r.header("X-Sapien-Event") for r in monitor.requests]
        assert notices.count("system.subscription.failing") == 1
        assert notices.count("system.subscription.recovered") == 1
        assert not [r for r in failing.requests if r.header("X-Sapien-Event").startswith("system.")]

        stats = api.get(f"/api/v1/subscriptions/{watched['id']}/stats").json()
        assert stats["last_hour"]["deliveries"] == {"succeeded": 2, "failed": 3}
        assert stats["last_hour"]["attempts"] == {"total": 14, "failed": 12}
        assert stats["last_failure"]["reason"] == "HTTP 500"
        assert stats["last_success_at"] is not None
        assert stats["health"]["consecutive_failures"] == 0 and stats["health"]["failing_notice_at"] is None
    finally:
        failing.close()
        monitor.close()


def test_a_disabled_subscription_is_probed_at_growing_intervals_until_its_receiver_answers(
    platform_factory, make_organization, make_api
) -> None:
    platform = platform_factory()
    platform.relay()
    platform.worker()  # no beat: this test runs the probe's passes itself, at the times it chooses
    target, monitor = Receiver(responder=always(503)), Receiver()
    try:
        api = make_api(make_organization())
        watched = subscribe(api, target.url, ["person.*"], probe_when_disabled=True)
        subscribe(api, monitor.url, ["system.*"], secret=MONITOR_SECRET)
        start = timezone.now()
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().get(pk=watched["id"])
            subscription_disable(subscription=subscription, reason="Disabled after 20 failures.", now=start)
        monitor.wait_for(1, predicate=of_type("system.subscription.disabled"))

        assert subscriptions_probe_due(now=start + timedelta(seconds=59)) == 0
        assert subscriptions_probe_due(now=start + timedelta(seconds=60)) == 1
        (first,) = target.wait_for(1)
        ping = verified(first, SECRET)
        assert (ping["type"], ping["data"]["probe"]) == ("system.ping", 1)
        assert first.header("X-Sapien-Attempt") == "1"
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 1, message="1st failed")

        assert subscriptions_probe_due(now=start + timedelta(seconds=179)) == 0  # the interval doubled: 2 minutes
        assert subscriptions_probe_due(now=start + timedelta(seconds=180)) == 1
        second = target.wait_for(2)[1]
        assert verified(second, SECRET)["data"]["probe"] == 2
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 2, message="2nd failed")
        assert Subscription.objects.get(pk=watched["id"]).probe_next_at == start + timedelta(seconds=180 + 240)

        target.responder = always(200)
        assert subscriptions_probe_due(now=start + timedelta(seconds=420)) == 1
        (notice,) = monitor.wait_for(1, predicate=of_type("system.subscription.recovered"))
        data = verified(notice, MONITOR_SECRET)["data"]
        assert (data["subscription_id"], data["active"], data["probe"], data["probes_sent"]) == (
            watched["id"], False, True, 3,
        )  # fmt: skip

        wait_until(lambda: Subscription.objects.get(pk=watched["id"]).probe_next_at is None, message="probing ends")
        assert Subscription.objects.get(pk=watched["id"]).active is False  # re-enabling is its owner's call
        assert subscriptions_probe_due(now=start + timedelta(days=1)) == 0
        assert len(target.requests) == 3  # one attempt per probe: a failed ping is not retried
        events = [r.header("X-Sapien-Event") for r in monitor.requests]
        assert events.count("system.subscription.recovered") == 1

        response = api.patch(f"/api/v1/subscriptions/{watched['id']}", {"active": True}, format="json")
        assert response.status_code == 200
        assert response.json()["missed_while_disabled"]["replay"] == f"/api/v1/subscriptions/{watched['id']}/replay"
    finally:
        target.close()
        monitor.close()
