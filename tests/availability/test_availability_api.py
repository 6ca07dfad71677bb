"""The availability API: own status, others' status, overrides, profiles, presence; scopes and isolation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from availability.models import AvailabilityProfile, Status, UserAvailability
from sapien.core.models import User
from sapien.events.models import Event
from tests.availability.conftest import state_of

pytestmark = pytest.mark.django_db
USER_SCOPES = "availability:read availability:write"


@pytest.fixture
def me_api(make_api, user):
    return make_api(user.organization, USER_SCOPES, user=user)


def test_put_get_and_delete_my_status(me_api, user) -> None:
    expires = (timezone.now() + timedelta(hours=1)).isoformat()

    put = me_api.put(
        "/api/v1/availability/me", {"status": "busy", "custom_message": "Focus", "expires_at": expires}, format="json"
    )

    assert put.status_code == 200
    body = put.json()
    assert set(body) == {
        "user_id",
        "status",
        "previous_status",
        "custom_message",
        "expires_at",
        "changed_at",
        "trigger",
        "online",
    }
    assert (body["status"], body["previous_status"], body["custom_message"], body["trigger"], body["online"]) == (
        "busy", "available", "Focus", "manual", True,
    )  # fmt: skip
    assert me_api.get("/api/v1/availability/me").json()["status"] == "busy"
    cleared = me_api.delete("/api/v1/availability/me")
    assert cleared.status_code == 200
    assert cleared.json()["status"] == "available"


@pytest.mark.parametrize(("length", "accepted"), [(256, True), (257, False)])
@pytest.mark.parametrize("character", ["é", "😀", "a"])
def test_custom_message_counts_unicode_characters(me_api, user, length: int, accepted: bool, character: str) -> None:
    response = me_api.put(
        "/api/v1/availability/me", {"status": "busy", "custom_message": character * length}, format="json"
    )

    assert (response.status_code == 200) is accepted
    if not accepted:
        assert response.status_code == 400
        assert "custom_message" in response.json()["error"]["details"]
        assert state_of(user).status == Status.AVAILABLE


@pytest.mark.parametrize(
    "body",
    [
        {"status": "sleeping"},
        {},
        {"status": "busy", "expires_at": "2001-01-01T00:00:00Z"},
        {"status": "busy", "expires_at": "not a date"},
    ],
)
def test_bad_declarations_are_refused_and_change_nothing(me_api, user, body: dict) -> None:
    events_before = Event.objects.count()

    response = me_api.put("/api/v1/availability/me", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert state_of(user).status == Status.AVAILABLE
    assert Event.objects.count() == events_before


def test_my_status_needs_a_user_token(organization, make_api) -> None:
    client_api = make_api(organization, USER_SCOPES)

    response = client_api.get("/api/v1/availability/me")

    assert response.status_code == 403


def test_scopes(make_api, user) -> None:
    reader = make_api(user.organization, "availability:read", user=user)

    assert reader.get("/api/v1/availability/me").status_code == 200
    assert reader.put("/api/v1/availability/me", {"status": "busy"}, format="json").status_code == 403
    assert (
        reader.post(
            "/api/v1/presence/heartbeat",
            {"connection_id": "c", "device_type": "web", "activity": "active"},
            format="json",
        ).status_code
        == 403
    )


def test_override_by_an_admin_blocks_manual_changes_with_409(make_api, me_api, user) -> None:
    admin = make_api(user.organization, "events:admin availability:read")

    created = admin.post(
        f"/api/v1/users/{user.pk}/availability/override",
        {"status": "offline", "custom_message": "Suspended"},
        format="json",
    )
    refused = me_api.put("/api/v1/availability/me", {"status": "available"}, format="json")
    lifted = admin.delete(f"/api/v1/users/{user.pk}/availability/override")

    assert created.status_code == 201
    assert created.json()["status"] == "offline"
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "override_in_force"
    assert lifted.status_code == 200
    assert lifted.json()["status"] == "available"


def test_override_needs_events_admin(make_api, user) -> None:
    not_admin = make_api(user.organization, "availability:read availability:write")

    assert (
        not_admin.post(f"/api/v1/users/{user.pk}/availability/override", {"status": "busy"}, format="json").status_code
        == 403
    )


def test_reading_others_and_in_bulk(make_api, me_api, user, organization) -> None:
    colleague = User.objects.create_user("bob@example.com", "correct-horse", organization=organization)
    reader = make_api(organization, "availability:read")
    me_api.put("/api/v1/availability/me", {"status": "do_not_disturb"}, format="json")

    one = reader.get(f"/api/v1/users/{user.pk}/availability").json()
    never_seen = reader.get(f"/api/v1/users/{colleague.pk}/availability").json()
    bulk = reader.get("/api/v1/availability", {"user_ids": f"{user.pk},{colleague.pk}"}).json()

    assert one["status"] == "do_not_disturb"
    assert never_seen == {
        "user_id": str(colleague.pk), "status": "offline", "previous_status": None, "custom_message": None,
        "expires_at": None, "changed_at": None, "trigger": None, "online": False,
    }  # fmt: skip
    assert {entry["user_id"]: entry["status"] for entry in bulk["results"]} == {
        str(user.pk): "do_not_disturb", str(colleague.pk): "offline",
    }  # fmt: skip
    assert reader.get("/api/v1/availability", {"user_ids": "nope"}).status_code == 400


def test_another_organizations_user_does_not_exist(make_organization, make_api, user) -> None:
    stranger = make_api(make_organization("Stranger"), "availability:read events:admin availability:write")

    assert stranger.get(f"/api/v1/users/{user.pk}/availability").status_code == 404
    assert (
        stranger.post(f"/api/v1/users/{user.pk}/availability/override", {"status": "busy"}, format="json").status_code
        == 404
    )
    assert stranger.delete(f"/api/v1/users/{user.pk}/availability/override").status_code == 404
    assert stranger.get("/api/v1/availability", {"user_ids": str(user.pk)}).json()["results"] == []
    assert (
        stranger.post(
            "/api/v1/availability/profiles",
            {"user_id": str(user.pk), "name": "x", "timezone": "UTC", "rules": RULES},
            format="json",
        ).status_code
        == 404
    )
    assert not UserAvailability.objects.filter(user=user).exists()  # nothing was changed for them
    assert AvailabilityProfile.objects.count() == 0


def test_heartbeat_and_disconnect(me_api, user) -> None:
    beat = me_api.post(
        "/api/v1/presence/heartbeat",
        {"connection_id": "tab-1", "device_type": "web", "activity": "active", "location": "dashboard"},
        format="json",
    )
    bad = me_api.post(
        "/api/v1/presence/heartbeat",
        {"connection_id": "tab-1", "device_type": "fridge", "activity": "active"},
        format="json",
    )
    gone = me_api.post("/api/v1/presence/disconnect", {"connection_id": "tab-1"}, format="json")
    unknown = me_api.post("/api/v1/presence/disconnect", {"connection_id": "never-opened"}, format="json")

    assert beat.status_code == 200
    assert beat.json()["online"] is True
    assert bad.status_code == 400
    assert gone.status_code == 204
    assert unknown.status_code == 404
    assert user.connections.filter(connection_id="tab-1").count() == 0


RULES = [{"days_of_week": [1, 2, 3, 4, 5], "start_time": "09:00", "end_time": "17:00", "status": "busy"}]


def test_profiles_crud_records_their_events(me_api, user) -> None:
    created = me_api.post(
        "/api/v1/availability/profiles", {"name": "Work", "timezone": "Europe/Paris", "rules": RULES}, format="json"
    )
    profile_id = created.json()["id"]
    listed = me_api.get("/api/v1/availability/profiles").json()
    patched = me_api.patch(f"/api/v1/availability/profiles/{profile_id}", {"name": "Office"}, format="json")
    deleted = me_api.delete(f"/api/v1/availability/profiles/{profile_id}")

    assert created.status_code == 201
    assert created.json()["user_id"] == str(user.pk)
    assert [profile["id"] for profile in listed["results"]] == [profile_id]
    assert patched.json()["name"] == "Office"
    assert deleted.status_code == 204
    assert list(Event.objects.filter(type__startswith="availability.profile.").order_by("created_at").values_list("type", flat=True)) == [
        "availability.profile.created", "availability.profile.updated", "availability.profile.deleted",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "timezone": "Mars/Olympus", "rules": RULES},
        {"name": "x", "timezone": "UTC", "rules": [{**RULES[0], "days_of_week": [7]}]},
        {"name": "x", "timezone": "UTC", "rules": [{**RULES[0], "start_time": "25:00"}]},
        {"name": "x", "timezone": "UTC", "rules": [{**RULES[0], "start_time": "9:00"}]},
        {"name": "x", "timezone": "UTC", "rules": [{**RULES[0], "status": "offline"}]},
    ],
)
def test_invalid_profiles_are_refused(me_api, body: dict) -> None:
    response = me_api.post("/api/v1/availability/profiles", body, format="json")

    assert response.status_code == 400
    assert AvailabilityProfile.objects.count() == 0


def test_a_client_token_manages_profiles_for_a_user_with_events_admin(make_api, user) -> None:
    admin = make_api(user.organization, "availability:read availability:write events:admin")
    plain = make_api(user.organization, "availability:read availability:write")
    body = {"user_id": str(user.pk), "name": "Work", "timezone": "UTC", "rules": RULES}

    assert plain.post("/api/v1/availability/profiles", body, format="json").status_code == 403
    created = admin.post("/api/v1/availability/profiles", body, format="json")
    assert created.status_code == 201
    assert created.json()["user_id"] == str(user.pk)
    assert (
        admin.post(
            "/api/v1/availability/profiles", {k: v for k, v in body.items() if k != "user_id"}, format="json"
        ).status_code
        == 400
    )


REQUIRED = ["This field is required."]


@pytest.mark.parametrize(
    ("rules", "details"),
    [
        ([{"days_of_week": [2]}], {"0": {"start_time": REQUIRED, "end_time": REQUIRED, "status": REQUIRED}}),
        ([{k: v for k, v in RULES[0].items() if k != "status"}], {"0": {"status": REQUIRED}}),
        ([{}], {"0": {"days_of_week": REQUIRED, "start_time": REQUIRED, "end_time": REQUIRED, "status": REQUIRED}}),
        (
            [RULES[0], {"start_time": "10:00"}],
            {"1": {"days_of_week": REQUIRED, "end_time": REQUIRED, "status": REQUIRED}},
        ),
    ],
)
def test_a_patch_gives_every_rule_whole(me_api, user, rules: list, details: dict) -> None:
    profile_id = me_api.post(
        "/api/v1/availability/profiles", {"name": "Work", "timezone": "UTC", "rules": RULES}, format="json"
    ).json()["id"]

    response = me_api.patch(f"/api/v1/availability/profiles/{profile_id}", {"rules": rules}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "The request has invalid fields.",
        "details": {"rules": details},
    }
    assert AvailabilityProfile.objects.get(pk=profile_id).rules == RULES
    assert not Event.objects.filter(type="availability.profile.updated").exists()


def test_a_patch_replaces_the_rules_with_whole_ones(me_api, user) -> None:
    profile_id = me_api.post(
        "/api/v1/availability/profiles", {"name": "Work", "timezone": "UTC", "rules": RULES}, format="json"
    ).json()["id"]
    weekend = {"days_of_week": [6, 0], "start_time": "10:00", "end_time": "12:00", "status": "away"}

    response = me_api.patch(f"/api/v1/availability/profiles/{profile_id}", {"rules": [weekend]}, format="json")

    assert response.status_code == 200
    assert response.json()["rules"] == [{**weekend, "days_of_week": [0, 6]}]
    assert response.json()["name"] == "Work"
