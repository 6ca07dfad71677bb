"""Date filters read ISO 8601 moments in any offset and compare them in UTC; one UTC cannot show is a 400."""

from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db
OUT_OF_RANGE = "Must be a moment between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in UTC."
DATE_FILTERS = [
    ("/api/persons", "created_after"),
    ("/api/persons", "created_before"),
    ("/api/v1/subscriptions/{subscription_id}/deliveries", "since"),
    ("/api/v1/subscriptions/{subscription_id}/deliveries", "until"),
    ("/api/v1/events", "since"),
    ("/api/v1/events", "until"),
]


@pytest.fixture
def subscription(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="top-secret-value"
    )


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize(("path", "name"), DATE_FILTERS)
def test_a_moment_beyond_what_utc_can_show_is_refused(
    api: APIClient, subscription, path: str, name: str, moment: str
) -> None:
    url = path.format(subscription_id=subscription.id)

    response = api.get(f"{url}?{name}={quote(moment)}")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "The request has invalid fields.",
        "details": {name: [OUT_OF_RANGE]},
    }


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:01:00+00:01", "2026-06-15T09:00:00+15:59"]
)
@pytest.mark.parametrize(("path", "name"), DATE_FILTERS)
def test_the_extreme_moments_utc_can_show_are_accepted(
    api: APIClient, subscription, path: str, name: str, moment: str
) -> None:
    url = path.format(subscription_id=subscription.id)

    response = api.get(f"{url}?{name}={quote(moment)}")

    assert response.status_code == 200
