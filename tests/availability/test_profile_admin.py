"""Profiles changed in the Django admin: through the API's services, with its validation, events and schedule."""

import json
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext

from availability.models import AvailabilityProfile, ConnectionKind
from availability.services.connections import connection_open_or_refresh
from availability.services.profiles import profile_create
from sapien.core.models import User
from sapien.events.models import Event
from tests.availability.conftest import state_of

pytestmark = pytest.mark.django_db

PROFILES = "/admin/availability/availabilityprofile/"
API_PROFILES = "/api/v1/availability/profiles"
# The clock starts on Monday 2026-06-15 at 09:00 UTC: inside this window.
WORKDAYS = {"days_of_week": [5, 1, 2, 3, 4, 1], "start_time": "09:00", "end_time": "17:00", "status": "busy"}
WORKDAYS_AS_SAVED = {**WORKDAYS, "days_of_week": [1, 2, 3, 4, 5]}


def online_user(organization: Any, email: str) -> User:
    user = User.objects.create_user(email, "correct-horse", organization=organization)
    connection_open_or_refresh(
        user=user, kind=ConnectionKind.PRESENCE, connection_id="tab", device_type="web", source="presence_heartbeat"
    )
    return user


def form_of(owner: User, name: str, zone: str, rules: Any) -> dict[str, Any]:
    """The admin's form as a browser posts it: the rules as JSON text, ``active`` checked.

    With the owner and their organization, always: the page ignores the user once the profile
    exists, and the organization always (the user's decides).
    """
    return {
        "user": owner.pk, "organization": owner.organization_id or "", "name": name, "timezone": zone,
        "rules": rules if isinstance(rules, str) else json.dumps(rules), "active": "on",
    }  # fmt: skip


def story_of(user: User) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The profile and schedule events about ``user``: type, data and metadata, ids as placeholders."""
    about_profiles = Q(type__startswith="availability.profile.") | Q(type="availability.schedule.triggered")
    # The clock stands still within a request: its profile event comes before its schedule event, by name too.
    bodies = [json.loads(event.body) for event in Event.objects.filter(about_profiles).order_by("created_at", "type")]
    placeholders = {str(user.pk): "<user>", **{str(pk): "<profile>" for pk in profile_ids_of(user)}}
    return [
        (body["type"], {key: placeholders.get(value, value) if key in ("id", "user_id", "profile_id") else value
          for key, value in body["data"].items()},
         {key: body["metadata"][key] for key in ("source", "triggered_by")})
        for body in bodies
        if body["data"]["user_id"] == str(user.pk)
    ]  # fmt: skip


def profile_ids_of(user: User) -> set[str]:
    return {
        body["data"]["id"]
        for body in (json.loads(e.body) for e in Event.objects.filter(type="availability.profile.created"))
        if body["data"]["user_id"] == str(user.pk)
    }


def shown(user: User) -> tuple[str, str, str, bool]:
    state = state_of(user)
    return state.status, state.trigger, state.schedule_status, state.profile_id is not None


def profile_events() -> int:
    return Event.objects.filter(type__startswith="availability.profile.").count()


def test_a_profile_added_changed_and_deleted_in_the_admin_records_and_schedules_as_the_api_does(
    clock, admin_client: Client, admin_user: User, make_api, organization
) -> None:
    by_admin, by_api = online_user(organization, "ada@example.com"), online_user(organization, "grace@example.com")
    api = make_api(organization, "availability:read availability:write events:admin")
    clock.advance(6)

    added = admin_client.post(f"{PROFILES}add/", form_of(by_admin, "Work", "UTC", [WORKDAYS]))
    created = api.post(
        API_PROFILES, {"user_id": str(by_api.pk), "name": "Work", "timezone": "UTC", "rules": [WORKDAYS]},
        format="json",
    )  # fmt: skip
    clock.advance(6)
    assert shown(by_admin) == shown(by_api) == ("busy", "schedule", "busy", True)
    profile = AvailabilityProfile.objects.get(user=by_admin)
    assert (profile.organization_id, profile.rules) == (organization.id, [WORKDAYS_AS_SAVED])

    lunch = {**WORKDAYS_AS_SAVED, "status": "away"}
    changed = admin_client.post(f"{PROFILES}{profile.pk}/change/", form_of(by_admin, "Office", "UTC", [lunch]))
    patched = api.patch(f"{API_PROFILES}/{created.json()['id']}", {"name": "Office", "rules": [lunch]}, format="json")
    clock.advance(6)
    assert shown(by_admin) == shown(by_api) == ("away", "schedule", "away", True)

    deleted = admin_client.post(f"{PROFILES}{profile.pk}/delete/", {"post": "yes"})
    destroyed = api.delete(f"{API_PROFILES}/{created.json()['id']}")
    clock.advance(6)

    assert (added.status_code, changed.status_code, deleted.status_code) == (302, 302, 302)
    assert (created.status_code, patched.status_code, destroyed.status_code) == (201, 200, 204)
    assert shown(by_admin) == shown(by_api) == ("available", "schedule", "", False)
    assert not AvailabilityProfile.objects.exists()
    operator = {"source": "admin", "triggered_by": str(admin_user.pk)}
    schedule = {"source": "schedule", "triggered_by": None}
    work = {"id": "<profile>", "user_id": "<user>", "name": "Work", "timezone": "UTC", "rules": [WORKDAYS_AS_SAVED],
            "active": True}  # fmt: skip
    office = {**work, "name": "Office", "rules": [lunch]}
    window = {"window_start": "2026-06-15T09:00:00.000Z", "window_end": "2026-06-15T17:00:00.000Z"}
    assert story_of(by_admin) == [
        ("availability.profile.created", work, operator),
        ("availability.schedule.triggered",
         {"user_id": "<user>", "profile_id": "<profile>", "action": "applied", "status": "busy",
          "previous_schedule_status": None, **window, "current_status": "busy"}, schedule),
        ("availability.profile.updated", office, operator),
        ("availability.schedule.triggered",
         {"user_id": "<user>", "profile_id": "<profile>", "action": "applied", "status": "away",
          "previous_schedule_status": "busy", **window, "current_status": "away"}, schedule),
        ("availability.profile.deleted", office, operator),
        ("availability.schedule.triggered",
         {"user_id": "<user>", "profile_id": None, "action": "lifted", "status": None,
          "previous_schedule_status": "away", "window_start": None, "window_end": None,
          "current_status": "available"}, schedule),
    ]  # fmt: skip
    # The API's story is the same, but for who caused the profile changes.
    assert [(kind, data) for kind, data, _ in story_of(by_api)] == [
        (kind, data) for kind, data, _ in story_of(by_admin)
    ]
    assert {metadata["source"] for kind, _, metadata in story_of(by_api) if "profile" in kind} == {"api"}


RULE_ERRORS = [
    ([{**WORKDAYS, "start_time": "9:00"}], ["Rule 1, start_time: Must be a time as HH:MM (00:00 to 23:59)."]),
    ([WORKDAYS, {**WORKDAYS, "days_of_week": [7]}],
     ["Rule 2, days_of_week, item 1: Ensure this value is less than or equal to 6."]),
    ([{**WORKDAYS, "status": "offline"}], ['Rule 1, status: "offline" is not a valid choice.']),
    ([{"days_of_week": [1], "start_time": "09:00"}],
     ["Rule 1, end_time: This field is required.", "Rule 1, status: This field is required."]),
    ([WORKDAYS, 1], ["Rule 2: Invalid data. Expected a dictionary, but got int."]),
    ([WORKDAYS] * 51, ["At most 50 rules."]),
    ({"monday": WORKDAYS}, ['Expected a list of items but got type "dict".']),
]  # fmt: skip


@pytest.mark.parametrize(("rules", "errors"), RULE_ERRORS)
def test_the_admin_refuses_a_new_profile_with_invalid_rules_and_writes_nothing(
    admin_client: Client, organization, rules: Any, errors: list[str]
) -> None:
    ada = online_user(organization, "ada@example.com")
    events_before = Event.objects.count()

    response = admin_client.post(f"{PROFILES}add/", form_of(ada, "Work", "UTC", rules))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"rules": errors}
    assert not AvailabilityProfile.objects.exists()
    assert Event.objects.count() == events_before


def test_the_admin_refuses_a_time_zone_the_api_refuses(admin_client: Client, organization) -> None:
    ada = online_user(organization, "ada@example.com")

    response = admin_client.post(f"{PROFILES}add/", form_of(ada, "Work", "Mars/Olympus", [WORKDAYS]))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "timezone": ["Must be an IANA time zone name, such as Europe/Paris."]
    }
    assert not AvailabilityProfile.objects.exists()
    assert profile_events() == 0


@pytest.mark.parametrize(("rules", "errors"), RULE_ERRORS[:2])
def test_the_admin_refuses_invalid_rules_on_a_change_and_keeps_the_profile(
    clock, admin_client: Client, organization, rules: Any, errors: list[str]
) -> None:
    ada = online_user(organization, "ada@example.com")
    profile = profile_create(owner=ada, name="Work", timezone="UTC", rules=[WORKDAYS_AS_SAVED])
    events_before = Event.objects.count()

    response = admin_client.post(f"{PROFILES}{profile.pk}/change/", form_of(ada, "Office", "UTC", rules))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"rules": errors}
    profile.refresh_from_db()
    assert (profile.name, profile.rules) == ("Work", [WORKDAYS_AS_SAVED])
    assert Event.objects.count() == events_before
    assert state_of(ada).status == "busy"


def test_the_admin_refuses_a_profile_for_a_user_without_an_organization(admin_client: Client) -> None:
    operator = User.objects.create_user("ops@example.com", "correct-horse")

    response = admin_client.post(f"{PROFILES}add/", form_of(operator, "Work", "UTC", [WORKDAYS]))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "user": ["This user belongs to no organization, so has no availability."]
    }
    assert not AvailabilityProfile.objects.exists()
    assert profile_events() == 0


def test_deleting_profiles_in_bulk_in_the_admin_records_one_deleted_event_per_profile(
    clock, admin_client: Client, admin_user: User, organization
) -> None:
    ada, grace = online_user(organization, "ada@example.com"), online_user(organization, "grace@example.com")
    weekend = {"days_of_week": [0, 6], "start_time": "10:00", "end_time": "12:00", "status": "away"}
    profiles = [
        profile_create(owner=ada, name="Work", timezone="UTC", rules=[WORKDAYS_AS_SAVED]),
        profile_create(owner=ada, name="Weekend", timezone="UTC", rules=[weekend]),
        profile_create(owner=grace, name="Work", timezone="Europe/Paris", rules=[WORKDAYS_AS_SAVED]),
    ]
    clock.advance(6)
    assert [state_of(ada).status, state_of(grace).status] == ["busy", "busy"]

    response = admin_client.post(
        PROFILES,
        {"action": "delete_selected", "post": "yes", "_selected_action": [str(profile.pk) for profile in profiles]},
    )
    clock.advance(6)

    assert response.status_code == 302
    assert not AvailabilityProfile.objects.exists()
    deleted = [json.loads(e.body) for e in Event.objects.filter(type="availability.profile.deleted")]
    assert sorted((body["data"]["id"], body["data"]["name"], body["metadata"]["source"]) for body in deleted) == sorted(
        (str(profile.pk), profile.name, "admin") for profile in profiles
    )
    assert {body["metadata"]["triggered_by"] for body in deleted} == {str(admin_user.pk)}
    assert [shown(ada), shown(grace)] == [("available", "schedule", "", False)] * 2


def locks_and_writes(queries: CaptureQueriesContext) -> list[tuple[str, str]]:
    """Each lock taken on, and each write to, a profile or a user's availability, in order."""
    steps = []
    for query in queries:
        sql = query["sql"]
        verb = "LOCK" if sql.startswith("SELECT") and sql.endswith("FOR UPDATE") else sql.split(" ", 1)[0]
        table = next((name for name in ('"availability_availabilityprofile"', '"availability_useravailability"')
                      if name in sql.split(" WHERE ", 1)[0]), None)  # fmt: skip
        if table and verb in ("LOCK", "INSERT", "UPDATE", "DELETE"):
            steps.append((verb, table.strip('"')))
    return steps


def test_the_admin_takes_the_services_locks_in_the_services_order(
    clock, admin_client: Client, make_api, organization
) -> None:
    by_admin, by_api = online_user(organization, "ada@example.com"), online_user(organization, "grace@example.com")
    api = make_api(organization, "availability:read availability:write events:admin")
    body = {"name": "Work", "timezone": "UTC", "rules": [WORKDAYS]}

    with CaptureQueriesContext(connection) as admin_adding:
        admin_client.post(f"{PROFILES}add/", form_of(by_admin, "Work", "UTC", [WORKDAYS]))
    with CaptureQueriesContext(connection) as api_adding:
        created = api.post(API_PROFILES, {"user_id": str(by_api.pk), **body}, format="json").json()
    profile = AvailabilityProfile.objects.get(user=by_admin)
    with CaptureQueriesContext(connection) as admin_changing:
        admin_client.post(f"{PROFILES}{profile.pk}/change/", form_of(by_admin, "Office", "UTC", [WORKDAYS]))
    with CaptureQueriesContext(connection) as api_changing:
        api.patch(f"{API_PROFILES}/{created['id']}", {**body, "name": "Office"}, format="json")
    with CaptureQueriesContext(connection) as admin_deleting:
        admin_client.post(f"{PROFILES}{profile.pk}/delete/", {"post": "yes"})
    with CaptureQueriesContext(connection) as api_deleting:
        api.delete(f"{API_PROFILES}/{created['id']}")

    assert locks_and_writes(admin_adding) == locks_and_writes(api_adding)
    assert locks_and_writes(admin_changing) == locks_and_writes(api_changing)
    assert locks_and_writes(admin_deleting) == locks_and_writes(api_deleting)
    for steps in (admin_adding, admin_changing, admin_deleting):
        assert ("LOCK", "availability_useravailability") in locks_and_writes(steps)
