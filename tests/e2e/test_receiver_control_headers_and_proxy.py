"""End to end, through real processes: custom headers reach the receiver on every attempt, signed deliveries
go through the egress proxy, and neither a header's value nor the proxy's password is ever logged."""

import hashlib
import hmac
import json

import pytest
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from tests.support.forward_proxy import ForwardProxy
from tests.support.processes import wait_until
from tests.support.receiver import ReceivedRequest, Receiver, Reply

pytestmark = pytest.mark.e2e

SECRET = "a-subscriber-secret-of-some-length"
TOKEN = "Bearer gateway-token-never-logged"
PASSWORD = "proxy-password-never-logged"


def subscribe(api: APIClient, url: str, **body) -> dict:
    response = api.post(
        "/api/v1/subscriptions", {"callback_url": url, "events": ["person.*"], "secret": SECRET, **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def fail_first(request: ReceivedRequest) -> Reply:
    return (500, {}, b"not yet") if request.header("X-Sapien-Attempt") == "1" else (200, {}, b"ok")


def test_custom_headers_arrive_with_every_attempt_beside_intact_signatures_and_are_never_logged(
    platform_factory, make_organization, make_api
) -> None:
    platform = platform_factory("redis", LOG_LEVEL="DEBUG").start_all()
    receiver = Receiver(responder=fail_first)
    try:
        api = make_api(make_organization())
        subscription = subscribe(api, receiver.url, headers={"Authorization": TOKEN, "X-Tenant": "acme"})
        api.post("/api/persons", {"name": "Ada"}, format="json")

        first, second = receiver.wait_for(2)
    finally:
        receiver.close()

    for request in (first, second):
        assert request.header("Authorization") == TOKEN
        assert request.header("X-Tenant") == "acme"
        expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
        assert Webhook(SECRET.encode()).verify(request.body, request.headers)["id"] == json.loads(request.body)["id"]
        assert request.header("User-Agent") == "Sapien-ESL/1.0.0"
    assert [r.header("X-Sapien-Attempt") for r in (first, second)] == ["1", "2"]
    delivery = Delivery.objects.get(subscription_id=subscription["id"])
    wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED, message="success")
    assert "gateway-token" not in platform.logs()
    assert "Delivery attempt failed" in platform.logs()  # the failed first attempt was logged, without the value
    assert b"gateway-token" not in api.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries").content


def test_deliveries_go_through_the_egress_proxy_and_its_password_is_never_logged(
    platform_factory, make_organization, make_api
) -> None:
    proxy = ForwardProxy(password=PASSWORD)
    receiver = Receiver()
    platform = platform_factory("redis", LOG_LEVEL="DEBUG", ESL_EGRESS_PROXY_URL=proxy.url_with_password(PASSWORD))
    platform.start_all()
    try:
        api = make_api(make_organization())
        subscription = subscribe(api, receiver.url, headers={"Authorization": TOKEN})
        api.post("/api/persons", {"name": "Ada"}, format="json")

        (request,) = receiver.wait_for(1)
        wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).exists(), message="success")
    finally:
        receiver.close()
        proxy.close()

    assert [(r.method, r.target) for r in proxy.requests] == [("POST", receiver.url)]
    assert request.header("Authorization") == TOKEN
    assert not any(name.startswith("proxy-") for name in request.headers)
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
    assert str(Delivery.objects.get().subscription_id) == subscription["id"]
    assert PASSWORD not in platform.logs()


def test_a_proxy_that_is_down_fails_attempts_as_proxy_errors_which_are_retried(
    platform_factory, make_organization, make_api
) -> None:
    proxy = ForwardProxy()
    proxy.close()  # nothing listens on its port
    proxy_address = f"127.0.0.1:{proxy.server.server_address[1]}"
    receiver = Receiver()
    platform_factory("redis", ESL_EGRESS_PROXY_URL=proxy.url_with_password(PASSWORD)).start_all()
    try:
        api = make_api(make_organization())
        subscription = subscribe(api, receiver.url)
        api.post("/api/persons", {"name": "Ada"}, format="json")

        wait_until(lambda: DeliveryAttempt.objects.count() >= 2, message="two attempts")
    finally:
        receiver.close()

    attempts = list(DeliveryAttempt.objects.order_by("number")[:2])
    assert [attempt.number for attempt in attempts] == [1, 2]
    for attempt in attempts:
        assert attempt.status_code is None
        assert attempt.error == f"proxy error: could not connect to the proxy {proxy_address}: Connection refused"
    assert receiver.requests == []
    log = api.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries").json()
    assert log["results"][0]["attempts"][0]["error"].startswith("proxy error: ")
    assert PASSWORD not in json.dumps(log)
