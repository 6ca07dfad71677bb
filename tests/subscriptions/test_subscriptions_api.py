"""The subscriptions API: validation, the write-only secret, tier limits, SSRF checks, isolation."""

import pytest
from rest_framework.test import APIClient

from sapien.core.models import Tier
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db
# A public IP literal passes the check without resolving anything; no test here sends to it.
# Every name resolves to loopback in the tests (tests/support/loopback_dns.py), so a name is refused.
URL = "https://93.184.215.14/sapien"


def create(api: APIClient, **body):
    return api.post("/api/v1/subscriptions", {"callback_url": URL, "events": ["person.created"], **body}, format="json")


def test_the_generated_secret_is_shown_once_and_never_again(api: APIClient) -> None:
    created = create(api)

    assert created.status_code == 201
    secret = created.json()["secret"]
    assert len(secret) >= 32
    subscription_id = created.json()["id"]
    assert "secret" not in api.get(f"/api/v1/subscriptions/{subscription_id}").json()
    assert "secret" not in api.get("/api/v1/subscriptions").json()["results"][0]
    assert Subscription.objects.get(pk=subscription_id).secret == secret


def test_a_given_secret_is_kept(api: APIClient) -> None:
    created = create(api, secret="my-own-secret-123456")

    assert Subscription.objects.get(pk=created.json()["id"]).secret == "my-own-secret-123456"


@pytest.mark.parametrize("events", [["person.*"], ["*"], ["availability.*", "system.ping"], ["toy.deleted"]])
def test_patterns_of_the_catalog_are_accepted(api: APIClient, events: list[str]) -> None:
    assert create(api, events=events).status_code == 201


@pytest.mark.parametrize("events", [["person.exploded"], ["people.*"], [], ["person.created", "nope"]])
def test_unknown_event_types_are_refused(api: APIClient, events: list[str]) -> None:
    response = create(api, events=events)

    assert response.status_code == 400
    assert "events" in response.json()["error"]["details"]
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/plain-http",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://192.168.1.1/hook",
        "https://172.16.5.4/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "ftp://hooks.example.com/",
        "not a url",
    ],
)
def test_internal_or_non_https_callbacks_are_refused(api: APIClient, url: str) -> None:
    response = create(api, callback_url=url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_callback_url", "validation_error"}
    assert Subscription.objects.count() == 0


def test_a_name_resolving_to_an_internal_address_is_refused(api: APIClient) -> None:
    response = create(api, callback_url="https://sneaky.example.com/hook")  # resolves to 127.0.0.1

    assert response.status_code == 400
    assert "internal address" in response.json()["error"]["message"]
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "https://hooks.example.com/sapien"])
def test_private_callbacks_are_allowed_when_configured(api: APIClient, settings, url: str) -> None:
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = True

    assert create(api, callback_url=url).status_code == 201


def test_the_free_tier_allows_five_subscriptions(make_organization, make_api) -> None:
    api = make_api(make_organization(tier=Tier.FREE))
    for _ in range(5):
        assert create(api).status_code == 201

    refused = create(api)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "subscription_limit_reached"
    assert refused.json()["error"]["details"]["limit"] == 5
    assert Subscription.objects.count() == 5


def test_enterprise_has_no_subscription_limit(make_organization, make_api) -> None:
    api = make_api(make_organization(tier=Tier.ENTERPRISE))

    for _ in range(30):
        assert create(api).status_code == 201


def test_patch_changes_events_and_active_and_checks_the_url(api: APIClient) -> None:
    subscription_id = create(api).json()["id"]

    patched = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"events": ["pet.*"], "active": False}, format="json"
    )
    refused = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"callback_url": "https://10.0.0.1/"}, format="json"
    )

    assert patched.status_code == 200
    assert patched.json()["events"] == ["pet.*"]
    assert patched.json()["active"] is False
    assert refused.status_code == 400
    assert Subscription.objects.get().callback_url == URL


def test_delete(api: APIClient) -> None:
    subscription_id = create(api).json()["id"]

    assert api.delete(f"/api/v1/subscriptions/{subscription_id}").status_code == 204
    assert Subscription.objects.count() == 0


def test_scopes(organization, make_api) -> None:
    reader = make_api(organization, scopes="events:read")
    writer = make_api(organization, scopes="events:subscribe")

    assert create(reader).status_code == 403
    assert create(writer).status_code == 201
    assert writer.get("/api/v1/subscriptions").status_code == 403
    assert len(reader.get("/api/v1/subscriptions").json()["results"]) == 1


def test_another_organizations_subscription_is_404_everywhere(make_organization, make_api) -> None:
    owner, stranger = make_api(make_organization("Owner")), make_api(make_organization("Stranger"))
    subscription_id = create(owner).json()["id"]
    base = f"/api/v1/subscriptions/{subscription_id}"

    assert stranger.get(base).status_code == 404
    assert stranger.patch(base, {"active": False}, format="json").status_code == 404
    assert stranger.delete(base).status_code == 404
    assert stranger.post(f"{base}/test").status_code == 404
    assert stranger.get(f"{base}/deliveries").status_code == 404
    assert stranger.get("/api/v1/subscriptions").json()["results"] == []
    assert Subscription.objects.get().active is True
