"""End to end: a client retrying a timed-out create with its Idempotency-Key makes one Person, and the
subscriber receives one ``person.created``, through the real relay, worker and receiver."""

import json

import pytest

from sapien.entities.models import Person
from tests.e2e.test_pipeline import subscribe
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e


def test_a_retried_create_reaches_the_subscriber_once(
    platform, receiver: Receiver, make_organization, make_api
) -> None:
    api = make_api(make_organization())
    subscribe(api, receiver.url, ["person.created"])
    key = {"HTTP_IDEMPOTENCY_KEY": "create-ada-1"}

    first = api.post("/api/persons", {"name": "Ada"}, format="json", **key)
    retry = api.post("/api/persons", {"name": "Ada"}, format="json", **key)
    later = api.post("/api/persons", {"name": "Grace"}, format="json")  # after the retry: seen last, or with it

    received = receiver.wait_for(2)
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    names = sorted(json.loads(request.body)["data"]["name"] for request in received)
    assert names == ["Ada", "Grace"]
    assert [json.loads(r.body)["data"]["id"] for r in received if json.loads(r.body)["data"]["name"] == "Ada"] == [
        first.json()["id"]
    ]
    assert later.status_code == 201
    assert Person.objects.filter(name="Ada").count() == 1
