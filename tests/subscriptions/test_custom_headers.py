"""Custom headers of a subscription: write-only values, names shown, reserved and malformed ones refused."""

import json
import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from deliveries import transport
from deliveries.claims import log_outcomes
from sapien.events.outbox import record_event
from subscriptions.custom_headers import MAX_HEADERS, MAX_TOTAL_SIZE, MAX_VALUE_LENGTH
from subscriptions.models import Subscription
from tests.support.claimed import claimed_delivery, claimed_event, claimed_subscription, send_claimed
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.django_db
URL = "https://93.184.215.14/sapien"  # a public IP literal: accepted without resolving, never sent to
TOKEN = "Bearer gateway-token-that-must-stay-hidden"
HEADERS = {"Authorization": TOKEN, "X-Api-Key": "key-that-must-stay-hidden"}


def create(api: APIClient, **body):
    return api.post("/api/v1/subscriptions", {"callback_url": URL, "events": ["person.created"], **body}, format="json")


def test_headers_are_stored_and_only_their_names_are_ever_shown(api: APIClient) -> None:
    created = create(api, headers=HEADERS)

    assert created.status_code == 201
    subscription_id = created.json()["id"]
    assert Subscription.objects.get(pk=subscription_id).headers == HEADERS
    shown = [
        created.content,
        api.get(f"/api/v1/subscriptions/{subscription_id}").content,
        api.get("/api/v1/subscriptions").content,
        api.patch(f"/api/v1/subscriptions/{subscription_id}", {"description": "d"}, format="json").content,
    ]
    for body in shown:
        assert b"must-stay-hidden" not in body
    assert created.json()["header_names"] == ["Authorization", "X-Api-Key"]
    assert "headers" not in created.json()
    assert api.get(f"/api/v1/subscriptions/{subscription_id}").json()["header_names"] == ["Authorization", "X-Api-Key"]


def test_a_subscription_without_headers_shows_no_names(api: APIClient) -> None:
    created = create(api)

    assert created.json()["header_names"] == []
    assert Subscription.objects.get(pk=created.json()["id"]).headers == {}


def test_a_patch_replaces_the_whole_map_and_an_empty_one_removes_them_all(api: APIClient) -> None:
    subscription_id = create(api, headers=HEADERS).json()["id"]

    replaced = api.patch(f"/api/v1/subscriptions/{subscription_id}", {"headers": {"X-Tenant": "t1"}}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["header_names"] == ["X-Tenant"]
    assert Subscription.objects.get(pk=subscription_id).headers == {"X-Tenant": "t1"}

    untouched = api.patch(f"/api/v1/subscriptions/{subscription_id}", {"active": True}, format="json")
    assert untouched.json()["header_names"] == ["X-Tenant"]

    cleared = api.patch(f"/api/v1/subscriptions/{subscription_id}", {"headers": {}}, format="json")
    assert cleared.json()["header_names"] == []
    assert Subscription.objects.get(pk=subscription_id).headers == {}


BAD_HEADERS = [
    ({"Content-Type": "text/plain"}, "'Content-Type' is reserved"),
    ({"content-length": "1"}, "'content-length' is reserved"),
    ({"Host": "elsewhere.example"}, "'Host' is reserved"),
    ({"Transfer-Encoding": "chunked"}, "'Transfer-Encoding' is reserved"),
    ({"Connection": "close"}, "'Connection' is reserved"),
    ({"Keep-Alive": "timeout=5"}, "'Keep-Alive' is reserved"),
    ({"Upgrade": "h2c"}, "'Upgrade' is reserved"),
    ({"TE": "trailers"}, "'TE' is reserved"),
    ({"Proxy-Authorization": "Basic eA=="}, "'Proxy-Authorization' is reserved"),
    ({"User-Agent": "mine"}, "'User-Agent' is reserved"),
    ({"Accept-Encoding": "br"}, "'Accept-Encoding' is reserved"),
    ({"Content-Encoding": "gzip"}, "'Content-Encoding' is reserved"),
    ({"traceparent": "00-abc"}, "'traceparent' is reserved"),
    ({"X-Sapien-Signature": "forged"}, "'X-Sapien-Signature' is reserved"),
    ({"x-sapien-anything": "v"}, "'x-sapien-anything' is reserved"),
    ({"webhook-signature": "v1,forged"}, "'webhook-signature' is reserved"),
    ({"Webhook-Id": "x"}, "'Webhook-Id' is reserved"),
    ({"X-Token": "a\r\nX-Injected: 1"}, "without line breaks"),
    ({"X-Token": "a\nb"}, "without line breaks"),
    ({"X-Token": "a\x00b"}, "without line breaks"),
    ({"X-Token": "caf\u00e9"}, "printable ASCII"),
    ({"X-Token": " padded"}, "leading and trailing spaces"),
    ({"X-Token": "v" * (MAX_VALUE_LENGTH + 1)}, f"longer than {MAX_VALUE_LENGTH} characters"),
    ({"X-Token": 5}, "must be a string"),
    ({"X-Token": None}, "must be a string"),
    ({"X-Token": ["a"]}, "must be a string"),
    ({"Bad Name": "v"}, "Header names must be"),
    ({"Bad:Name": "v"}, "Header names must be"),
    ({"": "v"}, "Header names must be"),
    ({"X-\u00e9": "v"}, "Header names must be"),
    ({"X-" + "n" * 63: "v"}, "Header names must be"),
    ({"X-Token": "a", "x-token": "b"}, "given twice"),
    ({f"X-H{i}": "v" for i in range(MAX_HEADERS + 1)}, f"At most {MAX_HEADERS} headers"),
    ({f"X-H{i}": "v" * 1000 for i in range(9)}, f"at most {MAX_TOTAL_SIZE} characters in all"),
    (["Authorization", "x"], "must be an object"),
    ("Authorization: x", "must be an object"),
    (None, "may not be null"),
]


@pytest.mark.parametrize(("headers", "reason"), BAD_HEADERS)
def test_bad_headers_are_refused_on_creation_with_a_clear_400_and_nothing_is_created(
    api: APIClient, headers, reason
) -> None:
    response = create(api, headers=headers)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert reason in error["details"]["headers"][0]
    assert "forged" not in error["details"]["headers"][0]  # a reason names the header, never its value
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize(("headers", "reason"), BAD_HEADERS)
def test_bad_headers_are_refused_on_change_and_the_old_ones_stay(api: APIClient, headers, reason) -> None:
    subscription_id = create(api, headers=HEADERS, description="before").json()["id"]

    response = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"headers": headers, "description": "after"}, format="json"
    )

    assert response.status_code == 400
    assert reason in response.json()["error"]["details"]["headers"][0]
    subscription = Subscription.objects.get(pk=subscription_id)
    assert (subscription.headers, subscription.description) == (HEADERS, "before")


def test_the_largest_allowed_map_is_accepted(api: APIClient) -> None:
    headers = {f"X-H{i:02}": "v" * (MAX_TOTAL_SIZE // MAX_HEADERS - 5) for i in range(MAX_HEADERS)}

    assert create(api, headers=headers).status_code == 201


def test_another_organizations_subscription_cannot_have_its_headers_changed(
    api: APIClient, make_organization, make_api
) -> None:
    subscription_id = create(api, headers=HEADERS).json()["id"]
    intruder = make_api(make_organization("Intruder"))

    read = intruder.get(f"/api/v1/subscriptions/{subscription_id}")
    changed = intruder.patch(f"/api/v1/subscriptions/{subscription_id}", {"headers": {}}, format="json")

    assert (read.status_code, changed.status_code) == (404, 404)
    assert b"Authorization" not in read.content + changed.content
    assert Subscription.objects.get(pk=subscription_id).headers == HEADERS


def test_the_schema_takes_headers_in_requests_and_shows_only_header_names_in_answers(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    components = schema["components"]["schemas"]
    for request in ("SubscriptionRequest", "PatchedSubscriptionRequest"):
        assert components[request]["properties"]["headers"]["additionalProperties"] == {"type": "string"}
        assert "header_names" not in components[request]["properties"]
    for answer in ("Subscription", "CreatedSubscription"):
        assert "headers" not in components[answer]["properties"]
        assert components[answer]["properties"]["header_names"]["readOnly"] is True


# --- the admin -----------------------------------------------------------------------------------------------


def admin_form(subscription: Subscription, **changes: str) -> dict[str, str]:
    return {
        "organization": str(subscription.organization_id), "callback_url": subscription.callback_url,
        "events": ",".join(subscription.events), "secret": "", "new_headers": "", "active": "on",
        "description": subscription.description, "disabled_reason": "", **changes,
    }  # fmt: skip


@pytest.fixture
def subscription(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url=URL, events=["person.created"], secret="s" * 20, headers=HEADERS
    )


def test_the_admin_masks_the_values_and_shows_the_names(admin_client: Client, subscription) -> None:
    pages = [
        admin_client.get("/admin/subscriptions/subscription/").content.decode(),
        admin_client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/").content.decode(),
    ]

    for page in pages:
        assert "must-stay-hidden" not in page
    assert "Authorization: ••••••••, X-Api-Key: ••••••••" in pages[1]


def test_the_admin_keeps_the_headers_when_left_empty_and_replaces_them_with_a_json_object(
    admin_client: Client, subscription
) -> None:
    path = f"/admin/subscriptions/subscription/{subscription.pk}/change/"

    kept = admin_client.post(path, admin_form(subscription, description="kept"))
    assert kept.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.headers, subscription.description) == (HEADERS, "kept")

    replaced = admin_client.post(path, admin_form(subscription, new_headers='{"X-Tenant": "t2"}'))
    assert replaced.status_code == 302
    subscription.refresh_from_db()
    assert subscription.headers == {"X-Tenant": "t2"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"Host": "secret-value"}', "is reserved"),
        ("secret-value", "a JSON object"),
        ('{"X-T": "secret-value\\r\\nb: c"}', "line breaks"),
    ],
)
def test_the_admin_refuses_bad_headers_without_echoing_them(admin_client: Client, subscription, text, reason) -> None:
    response = admin_client.post(
        f"/admin/subscriptions/subscription/{subscription.pk}/change/",
        admin_form(subscription, new_headers=text),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert reason in page
    assert "secret-value" not in page
    subscription.refresh_from_db()
    assert subscription.headers == HEADERS


# --- sending -------------------------------------------------------------------------------------------------


@pytest.fixture
def receiver(e2e_settings):
    transport._connections.reset()
    receiver = Receiver(responder=always(500, body=b"nope"))
    yield receiver
    receiver.close()
    transport._connections.reset()


def test_headers_go_with_every_attempt_and_no_log_line_carries_a_value(organization, receiver, caplog) -> None:
    subscription = Subscription.objects.create(
        organization=organization, callback_url=receiver.url, events=["*"], secret="s" * 20, headers=HEADERS
    )
    event = record_event(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
    assert event is not None
    caplog.set_level(logging.DEBUG)

    for attempt in (1, 2):
        [outcome] = send_claimed([claimed_delivery(claimed_event(event), claimed_subscription(subscription),
                                                   attempt=attempt)])  # fmt: skip
        assert outcome.result is not None and outcome.result.status_code == 500
        log_outcomes([outcome])  # as recording the outcome logs it

    assert [r.header("authorization") for r in receiver.requests] == [TOKEN, TOKEN]
    assert [r.header("x-api-key") for r in receiver.requests] == [HEADERS["X-Api-Key"]] * 2
    assert [json.loads(r.body)["id"] for r in receiver.requests] == [str(event.id)] * 2
    assert any(record.getMessage() == "Delivery attempt failed" for record in caplog.records)
    for record in caplog.records:
        assert "must-stay-hidden" not in record.getMessage()
        assert "must-stay-hidden" not in json.dumps(record.__dict__, default=str)
    assert "must-stay-hidden" not in repr(claimed_subscription(subscription))


def test_a_refusal_quotes_at_most_the_start_of_a_long_header_name(api: APIClient) -> None:
    response = create(api, headers={"X-" + "n" * 10_000: "v"})

    assert response.status_code == 400
    reason = response.json()["error"]["details"]["headers"][0]
    assert reason.startswith("Header names must be")
    assert len(reason) < 200
