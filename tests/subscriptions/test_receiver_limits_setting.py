"""``rate_limit_per_second`` and ``max_in_flight`` in the API: optional, JSON integers in range only, and
``throttled_until`` read-only; bad values are a 400 that changes nothing; another organization's is a 404."""

import pytest
from django.contrib.admin.sites import site
from rest_framework.test import APIClient

from subscriptions.admin import SubscriptionAdminForm
from subscriptions.models import MAX_IN_FLIGHT, MAX_RATE_LIMIT_PER_SECOND, Subscription

pytestmark = pytest.mark.django_db
URL = "https://93.184.215.14/sapien"  # a public literal: accepted without resolving, never sent to here


def create(api: APIClient, **body):
    return api.post("/api/v1/subscriptions", {"callback_url": URL, "events": ["person.*"], **body}, format="json")


def test_a_subscription_has_no_limits_of_its_own_unless_it_asks(api: APIClient) -> None:
    created = create(api)

    assert created.status_code == 201
    body = created.json()
    assert (body["rate_limit_per_second"], body["max_in_flight"], body["throttled_until"]) == (None, None, None)
    stored = Subscription.objects.get(pk=body["id"])
    assert (stored.rate_limit_per_second, stored.max_in_flight) == (None, None)


def test_limits_given_at_creation_are_stored_read_and_listed(api: APIClient) -> None:
    created = create(api, rate_limit_per_second=20, max_in_flight=5)

    assert created.status_code == 201, created.content
    subscription_id = created.json()["id"]
    assert (created.json()["rate_limit_per_second"], created.json()["max_in_flight"]) == (20, 5)
    read = api.get(f"/api/v1/subscriptions/{subscription_id}").json()
    assert (read["rate_limit_per_second"], read["max_in_flight"]) == (20, 5)
    listed = api.get("/api/v1/subscriptions").json()["results"][0]
    assert (listed["rate_limit_per_second"], listed["max_in_flight"]) == (20, 5)
    stored = Subscription.objects.get(pk=subscription_id)
    assert (stored.rate_limit_per_second, stored.max_in_flight) == (20, 5)


def test_limits_can_be_changed_and_removed(api: APIClient) -> None:
    subscription_id = create(api, rate_limit_per_second=20).json()["id"]

    changed = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"rate_limit_per_second": 7, "max_in_flight": 3}, format="json"
    )
    assert changed.status_code == 200
    assert Subscription.objects.values_list("rate_limit_per_second", "max_in_flight").get() == (7, 3)

    removed = api.patch(
        f"/api/v1/subscriptions/{subscription_id}",
        {"rate_limit_per_second": None, "max_in_flight": None},
        format="json",
    )
    assert (removed.status_code, removed.json()["rate_limit_per_second"], removed.json()["max_in_flight"]) == (
        200, None, None,
    )  # fmt: skip
    assert Subscription.objects.values_list("rate_limit_per_second", "max_in_flight").get() == (None, None)


def test_the_largest_limits_are_accepted(api: APIClient) -> None:
    created = create(api, rate_limit_per_second=MAX_RATE_LIMIT_PER_SECOND, max_in_flight=MAX_IN_FLIGHT)

    assert created.status_code == 201
    assert (created.json()["rate_limit_per_second"], created.json()["max_in_flight"]) == (10_000, 1_000)


BAD_VALUES = [0, -1, MAX_IN_FLIGHT * 1000, 2**31, 2**70, 1.5, 5.0, "5", "", True, [], {}, "many"]


@pytest.mark.parametrize("field", ["rate_limit_per_second", "max_in_flight"])
@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_limit_is_refused_at_creation_and_nothing_is_created(api: APIClient, field: str, value) -> None:
    response = create(api, **{field: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize("field", ["rate_limit_per_second", "max_in_flight"])
@pytest.mark.parametrize("value", [0, -5, 2**40, 2.5, "10", False])
def test_a_bad_limit_is_refused_on_update_and_nothing_changes(api: APIClient, field: str, value) -> None:
    subscription_id = create(api, rate_limit_per_second=20, max_in_flight=5, description="kept").json()["id"]

    response = api.patch(f"/api/v1/subscriptions/{subscription_id}", {field: value, "description": "x"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == [field]
    stored = Subscription.objects.get(pk=subscription_id)
    assert (stored.rate_limit_per_second, stored.max_in_flight, stored.description) == (20, 5, "kept")


def test_the_throttle_is_read_only(api: APIClient) -> None:
    subscription_id = create(api).json()["id"]

    response = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"throttled_until": "2030-01-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["throttled_until"] is None
    assert Subscription.objects.get(pk=subscription_id).throttled_until is None


def test_another_organizations_subscription_is_a_404_and_keeps_its_limits(
    api: APIClient, make_organization, make_api
) -> None:
    theirs = create(make_api(make_organization("Other")), max_in_flight=4).json()["id"]

    response = api.patch(f"/api/v1/subscriptions/{theirs}", {"max_in_flight": 400}, format="json")

    assert response.status_code == 404
    assert Subscription.objects.get(pk=theirs).max_in_flight == 4


def test_the_schema_documents_both_limits_and_the_read_only_throttle(api: APIClient) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    properties = schema["components"]["schemas"]["Subscription"]["properties"]

    assert properties["rate_limit_per_second"]["type"] == "integer"
    assert (properties["rate_limit_per_second"]["minimum"], properties["rate_limit_per_second"]["maximum"]) == (
        1, MAX_RATE_LIMIT_PER_SECOND,
    )  # fmt: skip
    assert properties["rate_limit_per_second"]["nullable"] is True
    assert (properties["max_in_flight"]["minimum"], properties["max_in_flight"]["maximum"]) == (1, MAX_IN_FLIGHT)
    assert properties["throttled_until"]["readOnly"] is True


@pytest.mark.parametrize(
    ("rate", "cap", "valid"),
    [("20", "5", True), ("", "", True), ("0", "", False), ("", "0", False), ("10001", "", False),
     ("", "1001", False), ("2.5", "", False)],
)  # fmt: skip
def test_the_admin_form_takes_limits_in_range_only(organization, rate: str, cap: str, valid: bool) -> None:
    form = SubscriptionAdminForm(
        data={"organization": organization.pk, "callback_url": URL, "events": "person.*", "secret": "s" * 20,
              "active": "on", "rate_limit_per_second": rate, "max_in_flight": cap},
        instance=Subscription(),
    )  # fmt: skip

    assert form.is_valid() is valid, form.errors
    assert Subscription in site._registry
