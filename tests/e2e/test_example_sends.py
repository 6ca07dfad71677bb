"""End to end: an example send reaches a real receiver through the relay and a worker, signed both ways,
valid against its type's schema, and in the subscription's delivery log; no other subscription gets it."""

import hashlib
import hmac
import json

import pytest
from jsonschema import FormatChecker
from jsonschema.validators import validator_for
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryStatus
from sapien.events.examples import example_body
from sapien.events.models import OutboxEntry
from sapien.events.schemas import event_schema, strict
from tests.e2e.test_pipeline import SECRET, subscribe
from tests.support.processes import wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e


def schema_errors(event_type: str, body: dict) -> list[str]:
    schema = strict(event_schema(event_type))
    return [error.message for error in validator_for(schema)(schema, format_checker=FormatChecker()).iter_errors(body)]


@pytest.mark.parametrize("event_type", ["person.updated", "user.availability.update"])
def test_an_example_arrives_signed_valid_and_logged_before_any_real_traffic(
    event_type, platform, receiver: Receiver, make_organization, make_api
) -> None:
    other = Receiver()
    try:
        organization = make_organization()
        api = make_api(organization)
        tested = subscribe(api, receiver.url, ["system.*"])  # the type need not be subscribed to
        subscribe(api, other.url, ["*"])

        answer = api.post(f"/api/v1/subscriptions/{tested['id']}/test", {"type": event_type}, format="json")

        assert answer.status_code == 202
        (request,) = receiver.wait_for(1)
        body = json.loads(request.body)
        assert schema_errors(event_type, body) == []
        expected = example_body(event_type)["data"]
        if event_type == "user.availability.update":  # its data names the organization, and the example's cause
            expected.update(organization_id=str(organization.id), trigger={**expected["trigger"], "source": "example"})
        assert body["data"] == expected
        expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
        Webhook(SECRET.encode()).verify(request.body, request.headers)
        assert request.header("webhook-id") == answer.json()["event_id"]
        assert request.header("X-Sapien-Event") == event_type
        delivery_id = request.header("X-Sapien-Delivery")
        wait_until(lambda: Delivery.objects.get(pk=delivery_id).status == DeliveryStatus.SUCCEEDED, message="logged")

        (logged,) = api.get(f"/api/v1/subscriptions/{tested['id']}/deliveries").json()["results"]
        assert (logged["id"], logged["status"]) == (delivery_id, "succeeded")
        assert logged["event"]["id"] == answer.json()["event_id"]
        wait_until(lambda: not OutboxEntry.objects.exists(), message="relayed")
        assert other.requests == []
    finally:
        other.close()
