"""Declarations changed in the Django admin: through the services, with their recompute, events and lock order."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from availability.models import ConnectionKind, Declaration, DeclarationKind, Status, UserAvailability
from availability.services.connections import connection_open_or_refresh
from availability.services.declarations import declaration_lift, declaration_set, override_set
from sapien.core.models import User
from tests.availability.conftest import events_of, state_of

pytestmark = pytest.mark.django_db

DECLARATIONS = "/admin/availability/declaration/"


def online_user(organization: Any, email: str) -> User:
    user = User.objects.create_user(email, "correct-horse", organization=organization)
    connection_open_or_refresh(
        user=user, kind=ConnectionKind.PRESENCE, connection_id="tab", device_type="web", source="presence_heartbeat"
    )
    return user


def told_about(user: User) -> list[tuple[Any, ...]]:
    """Each ``user.availability.update`` about ``user`` after the first: status, message, trigger, source, actor."""
    bodies = [body["data"] for body in events_of("user.availability.update") if body["data"]["user_id"] == str(user.pk)]
    return [
        (data["availability"]["status"], data["availability"].get("custom_message"), data["trigger"]["type"],
         data["trigger"]["source"], data["trigger"].get("actor_id"))
        for data in bodies[1:]
    ]  # fmt: skip


def shown(user: User) -> tuple[str, str, str, str, str, str]:
    state = state_of(user)
    return (state.status, state.previous_status, state.custom_message, state.trigger, state.trigger_source,
            state.actor_id)  # fmt: skip


def test_an_override_added_changed_and_deleted_in_the_admin_recomputes_and_emits_as_the_services_do(
    clock, admin_client: Client, admin_user: User, organization
) -> None:
    by_admin, by_service = online_user(organization, "ada@example.com"), online_user(organization, "grace@example.com")
    clock.advance(6)
    actor = str(admin_user.pk)
    override = DeclarationKind.SYSTEM_OVERRIDE

    added = admin_client.post(
        f"{DECLARATIONS}add/",
        {"user": by_admin.pk, "kind": "system_override", "status": "do_not_disturb", "custom_message": "Leave"},
    )
    declaration_set(
        user=by_service, kind=override, status=Status.DO_NOT_DISTURB, custom_message="Leave", actor_id=actor,
        source="admin",
    )  # fmt: skip
    clock.advance(6)
    assert shown(by_admin) == shown(by_service) == (
        "do_not_disturb", "available", "Leave", "system_override", "admin", actor
    )  # fmt: skip
    declaration = Declaration.objects.get(user=by_admin)

    changed = admin_client.post(
        f"{DECLARATIONS}{declaration.pk}/change/", {"status": "busy", "custom_message": "Back soon"}
    )
    declaration_set(
        user=by_service, kind=override, status=Status.BUSY, custom_message="Back soon", actor_id=actor, source="admin"
    )
    clock.advance(6)
    assert shown(by_admin) == shown(by_service) == (
        "busy", "do_not_disturb", "Back soon", "system_override", "admin", actor
    )  # fmt: skip

    deleted = admin_client.post(f"{DECLARATIONS}{declaration.pk}/delete/", {"post": "yes"})
    declaration_lift(user=by_service, kind=override, actor_id=actor, source="admin")
    clock.advance(6)

    assert (added.status_code, changed.status_code, deleted.status_code) == (302, 302, 302)
    assert shown(by_admin) == shown(by_service) == ("available", "busy", "", "system_override", "admin", actor)
    assert told_about(by_admin) == told_about(by_service)
    assert told_about(by_admin) == [
        ("do_not_disturb", "Leave", "system_override", "admin", actor),
        ("busy", "Back soon", "system_override", "admin", actor),
        ("available", None, "system_override", "admin", actor),
    ]
    assert not Declaration.objects.exists()


def first(queries: CaptureQueriesContext, *fragments: str) -> int:
    """The position of the first query whose SQL holds every fragment."""
    return next(index for index, query in enumerate(queries) if all(f in query["sql"] for f in fragments))


def test_the_admin_locks_the_users_availability_before_it_writes_the_declaration(
    admin_client: Client, organization
) -> None:
    ada = online_user(organization, "ada@example.com")
    lock = ('FROM "availability_useravailability"', "FOR UPDATE")

    with CaptureQueriesContext(connection) as adding:
        admin_client.post(f"{DECLARATIONS}add/", {"user": ada.pk, "kind": "manual", "status": "busy"})
    declaration = Declaration.objects.get(user=ada)
    with CaptureQueriesContext(connection) as changing:
        admin_client.post(f"{DECLARATIONS}{declaration.pk}/change/", {"status": "away", "custom_message": "Lunch"})
    with CaptureQueriesContext(connection) as deleting:
        admin_client.post(f"{DECLARATIONS}{declaration.pk}/delete/", {"post": "yes"})

    # The services' order (lock, then write): two paths never take these rows' locks in opposite orders.
    assert first(adding, *lock) < first(adding, 'INSERT INTO "availability_declaration"')
    assert first(changing, *lock) < first(changing, 'UPDATE "availability_declaration"')
    assert first(deleting, *lock) < first(deleting, 'DELETE FROM "availability_declaration"')
    assert state_of(ada).status == Status.AVAILABLE


def test_deleting_declarations_in_bulk_in_the_admin_lifts_each_one(
    clock, admin_client: Client, admin_user: User, organization
) -> None:
    ada, grace = online_user(organization, "ada@example.com"), online_user(organization, "grace@example.com")
    for user in (ada, grace):
        override_set(user=user, status=Status.OFFLINE, actor_id="an-operator", custom_message="Suspended")
    clock.advance(6)
    assert [state_of(ada).status, state_of(grace).status] == ["offline", "offline"]

    response = admin_client.post(
        DECLARATIONS,
        {"action": "delete_selected", "post": "yes",
         "_selected_action": [str(pk) for pk in Declaration.objects.values_list("pk", flat=True)]},
    )  # fmt: skip

    assert response.status_code == 302
    assert not Declaration.objects.exists()
    for user in (ada, grace):
        assert shown(user) == ("available", "offline", "", "system_override", "admin", str(admin_user.pk))


def test_the_admin_refuses_a_declaration_that_has_already_expired_and_changes_nothing(
    clock, admin_client: Client, organization
) -> None:
    ada = online_user(organization, "ada@example.com")
    yesterday = clock.now() - timedelta(days=1)

    response = admin_client.post(
        f"{DECLARATIONS}add/",
        {"user": ada.pk, "kind": "manual", "status": "busy",
         "expires_at_0": yesterday.strftime("%Y-%m-%d"), "expires_at_1": yesterday.strftime("%H:%M:%S")},
    )  # fmt: skip

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"expires_at": ["Must be in the future."]}
    assert not Declaration.objects.exists()
    assert state_of(ada).trigger == "session_start"


def test_the_admin_refuses_a_declaration_for_a_user_without_an_organization(admin_client: Client) -> None:
    operator = User.objects.create_user("ops@example.com", "correct-horse")

    response = admin_client.post(f"{DECLARATIONS}add/", {"user": operator.pk, "kind": "manual", "status": "busy"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "user": ["This user belongs to no organization, so has no availability."]
    }
    assert not Declaration.objects.exists()
    assert not UserAvailability.objects.filter(user=operator).exists()
