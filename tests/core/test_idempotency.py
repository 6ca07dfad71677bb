"""``Idempotency-Key`` on every POST and PATCH of the API: a retry is answered the first answer, with no second
write and no second event; another request with a used key is refused; bad keys are a clear 400."""

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.retention import purge_expired
from sapien.core.idempotency import IdempotencyKeyInUse, claim_key, purge_expired_keys
from sapien.core.idempotent_requests import finish
from sapien.core.models import IdempotencyRecord
from sapien.entities.models import Person
from sapien.events.models import Event

pytestmark = pytest.mark.django_db

KEY = "0b8f3c6e-6a52-4c1e-9f5e-3f4f1b9d2a77"


def create_person(api, name: str = "Ada", key: str | None = KEY, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post("/api/persons", {"name": name}, format="json", **headers, **extra)


def events_of(type_: str) -> int:
    return Event.objects.filter(type=type_).count()


def test_a_retried_create_is_answered_the_first_answer_without_a_second_person_or_event(api) -> None:
    first = create_person(api)

    retry = create_person(api)

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert retry["Content-Type"] == first["Content-Type"] == "application/json"
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Person.objects.count() == 1
    assert events_of("person.created") == 1


def test_a_retried_patch_is_answered_the_first_answer_and_does_not_write_again(api) -> None:
    person = create_person(api, key=None).json()
    url = f"/api/persons/{person['id']}"
    first = api.patch(url, {"name": "Grace"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    api.patch(url, {"name": "Edsger"}, format="json")  # someone else's change, after the first answer

    retry = api.patch(url, {"name": "Grace"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.json()["name"] == "Grace"
    assert Person.objects.get().name == "Edsger"  # the retry did not write "Grace" again
    assert events_of("person.updated") == 2


def test_a_retried_subscription_create_shows_its_one_secret_again(api) -> None:
    body = {"callback_url": "https://93.184.215.14/sapien", "events": ["person.*"]}
    first = api.post("/api/v1/subscriptions", body, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    retry = api.post("/api/v1/subscriptions", body, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert first.status_code == retry.status_code == 201
    assert retry.json()["secret"] == first.json()["secret"]
    assert retry.json() == first.json()
    assert [s["id"] for s in api.get("/api/v1/subscriptions").json()["results"]] == [first.json()["id"]]


def test_a_retried_subscription_test_sends_one_ping(api) -> None:
    subscription = api.post(
        "/api/v1/subscriptions", {"callback_url": "https://93.184.215.14/sapien", "events": ["*"]}, format="json"
    ).json()
    url = f"/api/v1/subscriptions/{subscription['id']}/test"

    first = api.post(url, HTTP_IDEMPOTENCY_KEY=KEY)
    retry = api.post(url, HTTP_IDEMPOTENCY_KEY=KEY)

    assert first.status_code == retry.status_code
    assert 200 <= first.status_code < 300
    assert retry["Idempotent-Replayed"] == "true"
    assert events_of("system.ping") == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/persons", {"name": "Grace"}),  # another body
        ("post", "/api/pets", {"name": "Ada", "type": "dog"}),  # another path
    ],
)
def test_the_same_key_with_another_request_is_422_and_changes_nothing(api, method, path, body) -> None:
    create_person(api)

    response = getattr(api, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert "different method, path, caller or body" in response.json()["error"]["message"]
    assert list(Person.objects.values_list("name", flat=True)) == ["Ada"]
    assert events_of("person.created") == 1
    assert events_of("pet.created") == 0


def test_the_same_key_from_another_client_of_the_organization_is_422(api, make_api, organization) -> None:
    create_person(api)

    response = create_person(make_api(organization))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Person.objects.count() == 1


def test_the_same_key_in_two_organizations_is_two_independent_requests(api, make_api, make_organization) -> None:
    other = make_api(make_organization("Globex"))
    ours = create_person(api)

    theirs = create_person(other)

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != ours.json()["id"]
    assert Person.objects.count() == 2
    assert create_person(other).json() == theirs.json()  # each organization's retry gets its own answer
    assert create_person(api).json() == ours.json()
    assert IdempotencyRecord.objects.filter(key=KEY).count() == 2


def test_a_failed_request_stores_nothing_and_its_key_can_be_used_again(api) -> None:
    refused = api.post("/api/persons", {"name": ""}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    refused_again = api.post("/api/persons", {"name": ""}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    created = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert refused.status_code == refused_again.status_code == 400
    assert refused_again.json()["error"]["code"] == "validation_error"
    assert "Idempotent-Replayed" not in refused_again
    assert created.status_code == 201
    assert "Idempotent-Replayed" not in created
    assert Person.objects.count() == 1


def test_an_expired_key_is_a_new_request(api) -> None:
    first = create_person(api)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))

    again = create_person(api)

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["id"] != first.json()["id"]
    assert Person.objects.count() == 2
    assert create_person(api).json() == again.json()  # the key now answers the new request


def test_the_answers_time_is_a_setting(api, settings) -> None:
    settings.ESL_IDEMPOTENCY_HOURS = 1
    create_person(api)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(minutes=61))

    assert "Idempotent-Replayed" not in create_person(api)
    assert Person.objects.count() == 2


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "two words", "tab\there", "nul\x00", "bell\x07", "caf\xe9", "a,b, c"],
    ids=["empty", "too-long", "space", "tab", "nul", "control", "non-ascii", "repeated-header"],
)
def test_a_bad_key_is_a_clear_400_and_changes_nothing(api, key: str) -> None:
    response = create_person(api, key=key)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_idempotency_key"
    assert error["message"] == (
        "The Idempotency-Key header must be 1 to 255 visible ASCII characters without spaces, e.g. a UUID."
    )
    assert Person.objects.count() == 0
    assert events_of("person.created") == 0
    assert IdempotencyRecord.objects.count() == 0


def test_a_key_of_255_visible_characters_is_taken(api) -> None:
    key = "!~" + "k" * 253

    assert create_person(api, key=key).status_code == 201
    assert create_person(api, key=key)["Idempotent-Replayed"] == "true"
    assert IdempotencyRecord.objects.get().key == key


def test_without_a_token_a_key_is_never_looked_at(client) -> None:
    response = client.post("/api/persons", {"name": "Ada"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="")

    assert response.status_code == 401
    assert IdempotencyRecord.objects.count() == 0


def test_methods_other_than_post_and_patch_ignore_the_header(api) -> None:
    person = create_person(api, key=None).json()
    url = f"/api/persons/{person['id']}"

    put = api.put(url, {"name": "Grace"}, format="json", HTTP_IDEMPOTENCY_KEY="not a valid key")
    get = api.get(url, HTTP_IDEMPOTENCY_KEY="not a valid key")

    assert put.status_code == get.status_code == 200
    assert IdempotencyRecord.objects.count() == 0


def test_a_request_without_a_key_stores_nothing(api) -> None:
    create_person(api, key=None)
    create_person(api, key=None)

    assert Person.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 0


def test_a_key_costs_a_create_two_statements_and_a_replay_writes_nothing(api) -> None:
    create_person(api, key=None)  # the token is read and kept: the three requests below cost the same to check it
    with CaptureQueriesContext(connection) as plain:
        create_person(api, key=None)
    with CaptureQueriesContext(connection) as keyed:
        create_person(api)
    with CaptureQueriesContext(connection) as replay:
        create_person(api)

    # The claim (one INSERT … ON CONFLICT) and the answer (one UPDATE); a savepoint pair per request either way.
    assert len(keyed) - len(plain) == 2
    writes = [q["sql"] for q in replay if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == [q["sql"] for q in replay if "ON CONFLICT ON CONSTRAINT core_idempotency_org_key" in q["sql"]]
    assert Person.objects.count() == 3


def test_purge_deletes_the_answers_past_their_time_and_keeps_the_others(api, make_api, make_organization) -> None:
    create_person(api, key="old")
    create_person(api, key="fresh")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    deleted = purge_expired_keys(now=timezone.now())

    assert deleted == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert Person.objects.count() == 2


def test_the_retention_pass_purges_expired_answers(api) -> None:
    create_person(api)

    result = purge_expired(now=timezone.now() + timedelta(hours=25))

    assert result.idempotency_keys == 1
    assert IdempotencyRecord.objects.count() == 0


def test_the_schema_offers_the_header_on_every_post_and_patch_and_only_there(client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    offered, seen = [], []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
            takes_key = any(p["name"] == "Idempotency-Key" for p in headers)
            seen.append((method, path))
            if takes_key:
                offered.append((method, path))
                assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }
    writes = [(m, p) for m, p in seen if m in {"post", "patch"} and p.startswith("/api/")]
    assert ("post", "/api/persons/") in writes
    assert ("patch", "/api/v1/subscriptions/{id}/") in writes
    assert offered == writes


def test_a_keyed_body_of_another_media_type_is_refused_as_without_a_key(api) -> None:
    response = api.post("/api/persons", {"name": "Ada"}, format="multipart", HTTP_IDEMPOTENCY_KEY=KEY)

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert Person.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_an_error_answered_without_a_rollback_frees_its_key(organization) -> None:
    record_id = claim_key(organization_id=organization.pk, key=KEY, fingerprint="f" * 64, now=timezone.now())
    view = cast(Any, SimpleNamespace(_sapien_idempotency_claim=record_id))

    finish(view, HttpResponse(status=409))

    assert IdempotencyRecord.objects.count() == 0


def test_a_key_whose_first_request_has_not_answered_is_409_in_use(organization) -> None:
    """Only possible for a first request outside a transaction: inside one, a retry waits on its claim."""
    IdempotencyRecord.objects.create(
        organization=organization, key=KEY, fingerprint="f" * 64, created_at=timezone.now()
    )

    with pytest.raises(IdempotencyKeyInUse) as refused:
        claim_key(organization_id=organization.pk, key=KEY, fingerprint="f" * 64, now=timezone.now())

    assert refused.value.status_code == 409
    assert refused.value.default_code == "idempotency_key_in_use"
