"""A sweep over every endpoint of the schema with another organization's ids: zero leaks.

And the owner's own reads never show a subscription secret after its creation.
"""

import json
import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from availability.services.profiles import profile_create
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.relay import relay_pending
from sapien.core.models import User
from sapien.events.models import Event

pytestmark = pytest.mark.django_db
SECRET = "owner-secret-never-shown-again"
# The signed blob URL is its own credential, for any holder, by design (docs/webhooks.md, "Large payloads").
# The event-type catalog is the same for every organization and holds none of their data (its list is swept).
NOT_ORGANIZATION_SCOPED = {"/api/v1/blobs/{blob_id}", "/api/v1/event-types/{type}/"}


def schema_operations() -> list[tuple[str, str]]:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [
        (path, method)
        for path, operations in paths.items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"} and path not in NOT_ORGANIZATION_SCOPED
    ]


@pytest.fixture
def victim(make_organization, make_api, settings):
    """An organization with one of everything, and the ids of it all. Nothing is ever sent to its callback."""
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = True  # the callback's host name is accepted without resolving
    organization = make_organization("Victim")
    api = make_api(organization)
    user = User.objects.create_user("victim@example.com", "correct-horse", organization=organization)
    person = api.post("/api/persons", {"name": "Victim Person", "notes": "private"}, format="json").json()
    pet = api.post("/api/pets", {"name": "Victim Pet", "type": "cat", "owner": person["id"]}, format="json").json()
    toy = api.post("/api/toys", {"name": "Victim Toy", "pet": pet["id"]}, format="json").json()
    subscription = api.post(
        "/api/v1/subscriptions",
        {"callback_url": "https://hooks.example.com/", "events": ["*"], "secret": SECRET},
        format="json",
    ).json()
    profile = profile_create(owner=user, name="Victim profile", timezone="UTC", rules=[])
    relay_pending(batch_size=100)
    delivery = Delivery.objects.filter(subscription_id=subscription["id"]).first()
    assert delivery is not None
    event = Event.objects.filter(organization=organization).first()
    assert event is not None
    DeliveryAttempt.objects.create(
        delivery=delivery, event_created_at=delivery.event_created_at, number=1, started_at=delivery.created_at,
        duration_ms=1, succeeded=True,
    )  # fmt: skip
    ids = {
        "/api/persons": person["id"], "/api/pets": pet["id"], "/api/toys": toy["id"],
        "/api/v1/subscriptions": subscription["id"], "/api/v1/availability/profiles": str(profile.id),
        "/api/v1/events": str(event.id),
        "user_id": str(user.pk), "subscription_id": subscription["id"], "delivery_id": str(delivery.id),
    }  # fmt: skip
    return {"api": api, "ids": ids, "organization": organization}


def fill(path: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "id":
            return next(v for prefix, v in ids.items() if prefix.startswith("/") and path.startswith(prefix + "/"))
        return ids[name]

    return re.sub(r"\{(\w+)\}", value, path)


def test_another_organizations_ids_find_nothing_on_any_endpoint(victim, make_organization, make_api) -> None:
    attacker_organization = make_organization("Attacker")
    attacker_user = User.objects.create_user(
        "attacker@example.com", "correct-horse", organization=attacker_organization
    )
    attacker = make_api(attacker_organization)  # every scope
    attacker_as_user = make_api(attacker_organization, user=attacker_user)
    secret_values = set(victim["ids"].values()) | {
        "Victim Person",
        "Victim Pet",
        "Victim Toy",
        "Victim profile",
        SECRET,
    }
    leaks = []
    checked = 0
    deliveries_before = Delivery.objects.filter(subscription_id=victim["ids"]["subscription_id"]).count()

    for path, method in schema_operations():
        client: APIClient = attacker_as_user if "/me" in path or "/presence/" in path else attacker
        url = fill(path, victim["ids"])
        response = getattr(client, method)(url, {}, format="json")
        checked += 1
        body = response.content.decode(errors="replace")
        if "{" in path and response.status_code != 404:
            leaks.append(f"{method.upper()} {path}: {response.status_code}")
        leaked = [value for value in secret_values if value in body]
        if leaked:
            leaks.append(f"{method.upper()} {path}: shows {leaked}")

    assert checked >= 30
    assert leaks == []
    assert Delivery.objects.filter(subscription_id=victim["ids"]["subscription_id"]).count() == deliveries_before


def test_the_owner_never_sees_the_secret_again(victim) -> None:
    api, ids = victim["api"], victim["ids"]
    shown = []
    for path, method in schema_operations():
        if method != "get" or "/me" in path:
            continue
        response = api.get(fill(path, ids), {"user_ids": ids["user_id"]})
        if SECRET in response.content.decode():
            shown.append(path)

    assert shown == []
    assert SECRET not in json.dumps(api.get(f"/api/v1/subscriptions/{ids['subscription_id']}").json())
