"""The payload filter in the subscriptions API: stored as given, refused with the reason, tested as the relay
would apply it; another organization's subscription or event does not exist."""

import json
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from sapien.core.errors import ApplicationError
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from subscriptions.payload_filter import MAX_FILTER_BYTES, MAX_FILTER_DEPTH
from subscriptions.services import subscription_create, subscription_update

pytestmark = pytest.mark.django_db
URL = "https://93.184.215.14/sapien"  # a public literal: accepted without resolving, never sent to
BUSY = {"data": {"current_status": "busy"}}


def recorded(**fields: Any) -> Event:
    """``record_event``'s event: always one here (ESL_ENABLED is on in the tests)."""
    event = record_event(**fields)
    assert event is not None
    return event


def create(api: APIClient, **body):
    return api.post("/api/v1/subscriptions", {"callback_url": URL, "events": ["availability.*"], **body}, format="json")


def nested(depth: int) -> dict:
    """An object ``depth`` objects deep, the outermost included."""
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_a_filter_is_stored_and_shown(api: APIClient) -> None:
    created = create(api, filter=BUSY)

    assert created.status_code == 201
    assert created.json()["filter"] == BUSY
    assert api.get(f"/api/v1/subscriptions/{created.json()['id']}").json()["filter"] == BUSY
    assert Subscription.objects.get().filter == BUSY


def test_without_a_filter_it_is_null(api: APIClient) -> None:
    created = create(api)

    assert created.json()["filter"] is None
    assert Subscription.objects.get().filter is None


def test_a_filter_is_replaced_whole_and_cleared_with_null_or_an_empty_object(api: APIClient) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]
    path = f"/api/v1/subscriptions/{subscription_id}"

    replaced = api.patch(path, {"filter": {"type": "availability.changed"}}, format="json")
    assert replaced.status_code == 200
    assert Subscription.objects.get().filter == {"type": "availability.changed"}

    assert api.patch(path, {"filter": {}}, format="json").json()["filter"] is None
    assert Subscription.objects.get().filter is None
    api.patch(path, {"filter": BUSY}, format="json")
    assert api.patch(path, {"filter": None}, format="json").json()["filter"] is None
    assert Subscription.objects.get().filter is None


def test_patching_other_fields_keeps_the_filter(api: APIClient) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]

    api.patch(f"/api/v1/subscriptions/{subscription_id}", {"description": "busy people"}, format="json")

    assert Subscription.objects.get().filter == BUSY


def test_a_filter_at_the_limits_is_accepted(api: APIClient) -> None:
    deepest = nested(MAX_FILTER_DEPTH)
    largest = {"data": {"name": "x" * (MAX_FILTER_BYTES - len('{"data":{"name":""}}'))}}
    assert len(json.dumps(largest, separators=(",", ":"))) == MAX_FILTER_BYTES

    assert create(api, filter=deepest).status_code == 201
    assert create(api, filter=largest).status_code == 201


BAD_FILTERS = [
    ([{"data": {}}], "A filter is a JSON object, not an array."),
    ("busy", "A filter is a JSON object, not a string."),
    (3, "A filter is a JSON object, not a number."),
    (True, "A filter is a JSON object, not a boolean."),
    (nested(MAX_FILTER_DEPTH + 1), f"The filter nests more than {MAX_FILTER_DEPTH} arrays or objects."),
    ({"data": {"tags": [[[[[[[["deep"]]]]]]]]}}, f"The filter nests more than {MAX_FILTER_DEPTH} arrays or objects."),
    ({"data": {"name": "x" * MAX_FILTER_BYTES}}, f"at most {MAX_FILTER_BYTES} are allowed."),
    ({"data": {"name": "a\x00b"}}, "The filter has a NUL character (\\u0000), which PostgreSQL cannot store."),
    ({"data": {"a\x00b": 1}}, "The filter has a NUL character (\\u0000), which PostgreSQL cannot store."),
]


@pytest.mark.parametrize(("payload_filter", "reason"), BAD_FILTERS)
def test_a_bad_filter_is_refused_with_the_reason_on_creation(api: APIClient, payload_filter, reason: str) -> None:
    response = create(api, filter=payload_filter)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["filter"][0].endswith(reason)
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize(("payload_filter", "reason"), BAD_FILTERS)
def test_a_bad_filter_is_refused_on_update_and_changes_nothing(api: APIClient, payload_filter, reason: str) -> None:
    subscription_id = create(api, filter=BUSY, description="kept").json()["id"]

    response = api.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"filter": payload_filter, "description": "changed"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"]["filter"][0].endswith(reason)
    stored = Subscription.objects.get()
    assert (stored.filter, stored.description) == (BUSY, "kept")


def test_a_lone_surrogate_is_refused_by_the_parser_before_anything_changes(api: APIClient) -> None:
    body = '{"callback_url": "' + URL + '", "events": ["*"], "filter": {"data": {"name": "\\ud800"}}}'

    response = api.post("/api/v1/subscriptions", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert Subscription.objects.count() == 0


@pytest.mark.parametrize(("payload_filter", "reason"), [*BAD_FILTERS[:2], ({"a": float("nan")}, "(nan).")])
def test_the_service_refuses_what_other_paths_could_bring(organization, payload_filter, reason: str) -> None:
    """The admin and other callers reach the service without the serializer: it checks again."""
    with pytest.raises(ApplicationError) as refused:
        subscription_create(organization=organization, callback_url=URL, events=["*"], filter=payload_filter)

    assert refused.value.get_codes() == "invalid_filter"
    assert refused.value.details["filter"][0].endswith(reason)
    assert Subscription.objects.count() == 0
    kept = subscription_create(organization=organization, callback_url=URL, events=["*"], filter=BUSY)
    with pytest.raises(ApplicationError):
        subscription_update(subscription=kept, filter=payload_filter)
    kept.refresh_from_db()
    assert kept.filter == BUSY


# POST /api/v1/subscriptions/{id}/test-filter


def test_filter(api: APIClient, subscription_id: str, body) -> dict:
    response = api.post(f"/api/v1/subscriptions/{subscription_id}/test-filter", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


test_filter.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_the_subscription_s_own_filter_is_tested_against_a_sample_event(api: APIClient) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]

    busy = {"type": "availability.changed", "data": {"user_id": "u1", "current_status": "busy"}}
    away = {"type": "availability.changed", "data": {"user_id": "u1", "current_status": "away"}}

    assert test_filter(api, subscription_id, {"event": busy}) == {"matches": True, "filter": BUSY}
    assert test_filter(api, subscription_id, {"event": away}) == {"matches": False, "filter": BUSY}


def test_a_given_filter_is_tested_instead_and_nothing_is_stored(api: APIClient) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]
    tags = {"data": {"tags": ["vip"]}}

    result = test_filter(api, subscription_id, {"filter": tags, "event": {"data": {"tags": ["new", "vip"]}}})

    assert result == {"matches": True, "filter": tags}
    assert test_filter(api, subscription_id, {"filter": None, "event": {"x": 1}}) == {"matches": True, "filter": None}
    assert Subscription.objects.get().filter == BUSY


def test_a_retained_event_can_be_the_sample(api: APIClient, organization) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]
    with transaction.atomic():
        busy = recorded(
            organization_id=organization.id, event_type="availability.changed", data={"current_status": "busy"}
        )
        away = recorded(
            organization_id=organization.id, event_type="availability.changed", data={"current_status": "away"}
        )

    assert test_filter(api, subscription_id, {"event_id": str(busy.id)})["matches"] is True
    assert test_filter(api, subscription_id, {"event_id": str(away.id)})["matches"] is False


def test_a_read_scope_is_enough_to_test_a_filter(api: APIClient, make_api, organization) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]
    reader = make_api(organization, scopes="events:read")
    no_scope = make_api(organization, scopes="entities:read")
    path = f"/api/v1/subscriptions/{subscription_id}/test-filter"

    assert reader.post(path, {"event": {"a": 1}}, format="json").status_code == 200
    assert no_scope.post(path, {"event": {"a": 1}}, format="json").status_code == 403


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "event", "Give either event or event_id, not both nor neither."),
        ({"event": {}, "event_id": "6f1c8c1e-0000-4000-8000-000000000000"}, "event", "not both nor neither."),
        ({"event": ["a"]}, "event", "An event is a JSON object, not an array."),
        ({"event": "busy"}, "event", "An event is a JSON object, not a string."),
        ({"event": None}, "event", "This field may not be null."),
        (
            {"event": {"data": "a\x00b"}},
            "event",
            "The event has a NUL character (\\u0000), which PostgreSQL cannot store.",
        ),
        ({"event": {}, "filter": [1]}, "filter", "A filter is a JSON object, not an array."),
        ({"event": {}, "filter": nested(MAX_FILTER_DEPTH + 1)}, "filter", "arrays or objects."),
        ({"event_id": "not-a-uuid"}, "event_id", "Must be a valid UUID."),
        ({"event_id": 123}, "event_id", "Must be a UUID, as a string."),
        ({"event_id": True}, "event_id", "Must be a UUID, as a string."),
    ],
)
def test_a_bad_filter_test_is_refused_with_the_reason(api: APIClient, body, field: str, reason: str) -> None:
    subscription_id = create(api, filter=BUSY).json()["id"]

    response = api.post(f"/api/v1/subscriptions/{subscription_id}/test-filter", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][field][0].endswith(reason)
    assert Subscription.objects.get().filter == BUSY


def test_another_organization_s_subscription_is_not_found(api: APIClient, make_api, make_organization) -> None:
    theirs = create(make_api(make_organization("Other")), filter=BUSY).json()["id"]

    response = api.post(f"/api/v1/subscriptions/{theirs}/test-filter", {"event": BUSY}, format="json")
    invalid = api.post(f"/api/v1/subscriptions/{theirs}/test-filter", {}, format="json")

    assert response.status_code == invalid.status_code == 404  # not even a 400 tells it exists
    assert response.json()["error"]["code"] == "not_found"
    assert "busy" not in response.content.decode()


def test_another_organization_s_event_is_not_found(api: APIClient, make_organization) -> None:
    mine = create(api, filter=BUSY).json()["id"]
    other = make_organization("Other")
    with transaction.atomic():
        theirs = recorded(organization_id=other.id, event_type="availability.changed", data={"current_status": "busy"})

    response = api.post(f"/api/v1/subscriptions/{mine}/test-filter", {"event_id": str(theirs.id)}, format="json")

    assert response.status_code == 404
    assert "busy" not in response.content.decode()


# The admin


def admin_form(subscription: Subscription, payload_filter: str) -> dict[str, str]:
    return {
        "organization": str(subscription.organization_id), "callback_url": subscription.callback_url,
        "events": ",".join(subscription.events), "secret": "", "active": "on", "description": "",
        "disabled_reason": "", "filter": payload_filter,
    }  # fmt: skip


def test_the_admin_shows_sets_and_clears_the_filter(admin_client, organization) -> None:
    subscription = subscription_create(organization=organization, callback_url=URL, events=["*"], filter=BUSY)
    path = f"/admin/subscriptions/subscription/{subscription.pk}/change/"
    assert "current_status" in admin_client.get(path).content.decode()

    assert admin_client.post(path, admin_form(subscription, '{"type": "person.created"}')).status_code == 302
    subscription.refresh_from_db()
    assert subscription.filter == {"type": "person.created"}
    assert admin_client.post(path, admin_form(subscription, "{}")).status_code == 302
    subscription.refresh_from_db()
    assert subscription.filter is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1]", "A filter is a JSON object, not an array."),
        ('{"a": NaN}', "The filter has a number JSON cannot write (nan)."),
        (json.dumps(nested(MAX_FILTER_DEPTH + 1)), f"The filter nests more than {MAX_FILTER_DEPTH} arrays or objects."),
        ('{"a": "\\u0000"}', "The filter has a NUL character (\\u0000), which PostgreSQL cannot store."),
        # Redisplayed escaped: the page could not encode the lone surrogate itself.
        ('{"a": "\\ud800"}', "The filter has a lone surrogate (such as \\ud800)"),
    ],
)
def test_the_admin_refuses_a_bad_filter_and_changes_nothing(admin_client, organization, text, reason) -> None:
    subscription = subscription_create(organization=organization, callback_url=URL, events=["*"], filter=BUSY)

    response = admin_client.post(
        f"/admin/subscriptions/subscription/{subscription.pk}/change/", admin_form(subscription, text)
    )

    assert response.status_code == 200  # the form again, with the error
    assert reason in response.content.decode().replace("&#x27;", "'")
    subscription.refresh_from_db()
    assert subscription.filter == BUSY


@pytest.mark.parametrize("events", ["nope", "person.*,nope", '["nope"]'])
def test_the_admin_refuses_unknown_event_types_as_the_api_does(admin_client, organization, events) -> None:
    subscription = subscription_create(organization=organization, callback_url=URL, events=["*"])

    response = admin_client.post(
        f"/admin/subscriptions/subscription/{subscription.pk}/change/",
        {**admin_form(subscription, ""), "events": events},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "Unknown event types: " in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.events == ["*"]
