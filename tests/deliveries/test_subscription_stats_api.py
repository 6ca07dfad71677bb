"""``GET /api/v1/subscriptions/{id}/stats``: its answer, its scope, bad input and isolation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from deliveries.health import hour_start
from deliveries.models import SubscriptionHealthHour
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db
URL = "https://93.184.215.14/sapien"  # a public IP literal: accepted without resolving; nothing is sent to it


@pytest.fixture(autouse=True)
def _health_settings(settings):
    settings.ESL_DISABLE_AFTER_FAILURES = 20
    settings.ESL_DISABLE_AFTER_SECONDS = 86400
    settings.ESL_FAILING_NOTICE_SHARE = 0.5


def create(api: APIClient, **body) -> dict:
    response = api.post("/api/v1/subscriptions", {"callback_url": URL, "events": ["person.*"], **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_new_subscription_has_empty_stats(api: APIClient) -> None:
    subscription = create(api)

    response = api.get(f"/api/v1/subscriptions/{subscription['id']}/stats")

    assert response.status_code == 200
    body = response.json()
    empty = {
        "deliveries": {"succeeded": 0, "failed": 0},
        "attempts": {"total": 0, "failed": 0},
        "duration_ms": {"p50": None, "p95": None},
    }
    assert {k: v for k, v in body["last_hour"].items() if k != "since"} == empty
    assert {k: v for k, v in body["last_day"].items() if k != "since"} == empty
    assert body["subscription_id"] == subscription["id"]
    assert (body["last_success_at"], body["last_failure"]) == (None, None)
    assert body["health"] == {
        "active": True, "consecutive_failures": 0, "failing_since": None, "failing_notice_after": 10,
        "failing_notice_at": None, "disable_after_failures": 20, "disables_at_earliest": None,
        "disabling_near": False, "disabled_at": None, "disabled_reason": "",
    }  # fmt: skip
    assert body["probe"] == {"enabled": False, "next_at": None, "sent": 0}


def test_stats_show_the_hours_counts_and_a_run_near_disabling(api: APIClient) -> None:
    subscription = create(api, probe_when_disabled=True)
    now = timezone.now()
    failing_since = now - timedelta(hours=3)
    Subscription.objects.filter(pk=subscription["id"]).update(consecutive_failures=12, failing_since=failing_since)
    SubscriptionHealthHour.objects.create(
        subscription_id=subscription["id"], hour=hour_start(now), shard=5, attempts=3, attempts_failed=3,
        deliveries_failed=1, duration_le_50ms=0, duration_le_100ms=3, duration_le_250ms=3, duration_le_500ms=3,
        duration_le_1000ms=3, duration_le_2500ms=3, duration_le_5000ms=3, duration_le_10000ms=3, duration_ms_max=80,
        last_failure_at=now, last_failure_status_code=502, last_failure_reason="HTTP 502",
    )  # fmt: skip

    body = api.get(f"/api/v1/subscriptions/{subscription['id']}/stats").json()

    assert body["last_hour"]["deliveries"] == {"succeeded": 0, "failed": 1}
    assert body["last_hour"]["attempts"] == {"total": 3, "failed": 3}
    assert body["last_hour"]["duration_ms"] == {"p50": 75, "p95": 80}
    assert body["last_failure"]["status_code"] == 502 and body["last_failure"]["reason"] == "HTTP 502"
    assert body["health"]["consecutive_failures"] == 12
    assert body["health"]["disabling_near"] is True
    assert body["health"]["disables_at_earliest"] is not None
    assert body["probe"]["enabled"] is True
    subscription_read = api.get(f"/api/v1/subscriptions/{subscription['id']}").json()
    assert (subscription_read["probe_when_disabled"], subscription_read["probes_sent"]) == (True, 0)


def test_probe_when_disabled_can_be_changed_but_its_state_cannot(api: APIClient) -> None:
    subscription = create(api)

    response = api.patch(
        f"/api/v1/subscriptions/{subscription['id']}",
        {"probe_when_disabled": True, "probes_sent": 99, "probe_next_at": "2030-01-01T00:00:00Z"},
        format="json",
    )

    assert response.status_code == 200
    stored = Subscription.objects.get(pk=subscription["id"])
    assert (stored.probe_when_disabled, stored.probes_sent, stored.probe_next_at) == (True, 0, None)


@pytest.mark.parametrize("value", ["maybe", 2, None, [True], 1, 0, "true", "yes", "off"])
def test_a_bad_probe_setting_is_refused_and_changes_nothing(api: APIClient, value) -> None:
    subscription = create(api)

    response = api.patch(f"/api/v1/subscriptions/{subscription['id']}", {"probe_when_disabled": value}, format="json")

    assert response.status_code == 400
    assert "probe_when_disabled" in response.json()["error"]["details"]
    assert Subscription.objects.get(pk=subscription["id"]).probe_when_disabled is False


def test_another_organizations_subscription_is_not_found(api: APIClient, make_organization, make_api) -> None:
    theirs = create(make_api(make_organization("Other")))
    SubscriptionHealthHour.objects.create(
        subscription_id=theirs["id"], hour=hour_start(timezone.now()), shard=0, attempts=5
    )

    response = api.get(f"/api/v1/subscriptions/{theirs['id']}/stats")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "attempts" not in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/subscriptions/00000000-0000-0000-0000-000000000000/stats",  # no such subscription
        "/api/v1/subscriptions/not-a-uuid/stats",
        "/api/v1/subscriptions/%00/stats",
    ],
)
def test_an_unknown_or_malformed_id_is_not_found(api: APIClient, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_stats_need_a_token_and_the_read_scope(organization, make_api) -> None:
    subscription = create(make_api(organization))
    path = f"/api/v1/subscriptions/{subscription['id']}/stats"

    assert APIClient().get(path).status_code == 401
    assert make_api(organization, scopes="entities:read").get(path).status_code == 403
    assert make_api(organization, scopes="events:read").get(path).status_code == 200


def test_stats_are_read_only(api: APIClient) -> None:
    subscription = create(api)
    path = f"/api/v1/subscriptions/{subscription['id']}/stats"

    for method in (api.post, api.put, api.patch, api.delete):
        response = method(path, {}, format="json")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_schema_documents_the_stats(api: APIClient) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/subscriptions/{subscription_id}/stats/"]["get"]
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(component["properties"]) == {
        "subscription_id", "generated_at", "last_hour", "last_day", "last_success_at", "last_failure", "health",
        "probe",
    }  # fmt: skip
