"""The ``ordered`` setting in the API: off by default, JSON booleans only, another organization's is a 404."""

import pytest
from rest_framework.test import APIClient

from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db
URL = "https://93.184.215.14/sapien"  # a public literal: accepted without resolving, never sent to here


def create(api: APIClient, **body):
    return api.post("/api/v1/subscriptions", {"callback_url": URL, "events": ["availability.*"], **body}, format="json")


def test_a_subscription_is_unordered_unless_it_asks(api: APIClient) -> None:
    created = create(api)

    assert created.status_code == 201
    assert created.json()["ordered"] is False
    assert Subscription.objects.get(pk=created.json()["id"]).ordered is False


def test_an_ordered_subscription_says_so_when_created_read_and_listed(api: APIClient) -> None:
    created = create(api, ordered=True)

    assert created.status_code == 201
    subscription_id = created.json()["id"]
    assert created.json()["ordered"] is True
    assert api.get(f"/api/v1/subscriptions/{subscription_id}").json()["ordered"] is True
    assert api.get("/api/v1/subscriptions").json()["results"][0]["ordered"] is True
    assert Subscription.objects.get(pk=subscription_id).ordered is True


def test_ordered_can_be_turned_on_and_off(api: APIClient) -> None:
    subscription_id = create(api).json()["id"]

    on = api.patch(f"/api/v1/subscriptions/{subscription_id}", {"ordered": True}, format="json")
    assert (on.status_code, on.json()["ordered"]) == (200, True)
    assert Subscription.objects.get(pk=subscription_id).ordered is True

    off = api.patch(f"/api/v1/subscriptions/{subscription_id}", {"ordered": False}, format="json")
    assert (off.status_code, off.json()["ordered"]) == (200, False)
    assert Subscription.objects.get(pk=subscription_id).ordered is False


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None, [], {}, "ordered"])
def test_anything_but_a_json_boolean_is_refused_at_creation_and_nothing_is_created(api: APIClient, value) -> None:
    response = create(api, ordered=value)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == ["ordered"]
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize("value", ["false", 1, None])
def test_anything_but_a_json_boolean_is_refused_on_update_and_nothing_changes(api: APIClient, value) -> None:
    subscription_id = create(api, ordered=True, description="kept").json()["id"]

    response = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"ordered": value, "description": "changed"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["ordered"]
    subscription = Subscription.objects.get(pk=subscription_id)
    assert (subscription.ordered, subscription.description) == (True, "kept")


def test_another_organizations_subscription_cannot_be_made_ordered(make_organization, make_api) -> None:
    owner = make_api(make_organization("Owner"))
    subscription_id = create(owner).json()["id"]
    stranger = make_api(make_organization("Stranger"))

    response = stranger.patch(f"/api/v1/subscriptions/{subscription_id}", {"ordered": True}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert Subscription.objects.get(pk=subscription_id).ordered is False
    assert "ordered" not in response.content.decode()


def test_the_openapi_schema_documents_ordered_as_a_boolean(api: APIClient) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()

    ordered = schema["components"]["schemas"]["Subscription"]["properties"]["ordered"]
    assert ordered["type"] == "boolean"
    assert "one delivery at a time" in ordered["description"]
    for request in ("SubscriptionRequest", "PatchedSubscriptionRequest"):
        assert schema["components"]["schemas"][request]["properties"]["ordered"]["type"] == "boolean"
    assert "ordered" not in schema["components"]["schemas"]["SubscriptionRequest"].get("required", [])
