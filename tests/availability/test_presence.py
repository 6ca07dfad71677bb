"""Connections: sessions and presence, devices, reloads, stale connections, idleness (time travel)."""

import pytest
from django.db import transaction

from availability import timers
from availability.models import Connection, ConnectionKind, Status, Trigger
from availability.services.connections import connection_close, connection_open_or_refresh
from availability.services.declarations import manual_status_set
from tests.availability.conftest import events_of, state_of, statuses_sent

pytestmark = pytest.mark.django_db


def heartbeat(user, connection_id: str, activity: str = "active", device: str = "web"):
    return connection_open_or_refresh(
        user=user, kind=ConnectionKind.PRESENCE, connection_id=connection_id, device_type=device,
        activity=activity, source="presence_heartbeat",
    )  # fmt: skip


def disconnect(user, connection_id: str) -> None:
    connection_close(user_id=user.pk, connection_id=connection_id, reason="disconnect")


def test_a_token_issued_to_the_user_opens_a_session(clock, user, make_token) -> None:
    make_token(user.organization, "availability:read", user=user)
    clock.advance(1)

    state = state_of(user)
    assert state.status == Status.AVAILABLE
    assert state.online is True
    assert state.trigger == Trigger.SESSION_START
    (online,) = events_of("presence.user_online")
    assert online["data"]["userId"] == str(user.pk)
    (update,) = events_of("user.availability.update")
    assert update["data"]["trigger"] == {
        "type": "session_start",
        "source": "oauth2_auth_endpoint",
        "actor_id": str(user.pk),
    }
    assert update["data"]["availability"]["previous_status"] == "offline"


def test_revoking_the_token_ends_the_session_after_the_debounce(clock, user, make_token) -> None:
    token = make_token(user.organization, "availability:read", user=user)
    clock.advance(1)

    token.revoke()
    clock.advance(4)
    assert state_of(user).status == Status.AVAILABLE  # still inside the 5 s debounce
    clock.advance(2)

    state = state_of(user)
    assert state.status == Status.OFFLINE
    assert state.trigger == Trigger.SESSION_END
    (offline,) = events_of("presence.user_offline")
    assert offline["data"]["reason"] == "logout"


def test_re_login_inside_the_debounce_never_flickers(clock, user, make_token) -> None:
    token = make_token(user.organization, "availability:read", user=user)
    clock.advance(10)

    token.revoke()
    clock.advance(2)
    make_token(user.organization, "availability:read", user=user)
    clock.advance(10)

    assert statuses_sent() == ["available"]
    assert len(events_of("presence.user_online")) == 1
    assert events_of("presence.user_offline") == []


def test_two_devices_the_user_stays_online_until_the_last_one_leaves(clock, user) -> None:
    heartbeat(user, "laptop", device="web")
    heartbeat(user, "phone", device="mobile")
    clock.advance(1)

    disconnect(user, "laptop")
    clock.advance(10)
    assert state_of(user).status == Status.AVAILABLE
    assert events_of("presence.user_offline") == []

    disconnect(user, "phone")
    clock.advance(10)
    assert state_of(user).status == Status.OFFLINE
    assert [e["data"]["reason"] for e in events_of("presence.user_offline")] == ["disconnect"]
    assert len(events_of("presence.user_online")) == 1


def test_a_page_reload_inside_the_debounce_sends_nothing(clock, user) -> None:
    heartbeat(user, "tab-1")
    clock.advance(6)
    sent_before = len(events_of("user.availability.update"))

    disconnect(user, "tab-1")
    clock.advance(0.4)
    heartbeat(user, "tab-2")
    clock.advance(10)

    assert len(events_of("user.availability.update")) == sent_before
    assert events_of("presence.user_offline") == []
    assert len(events_of("presence.user_online")) == 1


def test_reconnecting_after_the_debounce_gives_offline_then_online(clock, user) -> None:
    heartbeat(user, "tab-1")
    clock.advance(6)
    disconnect(user, "tab-1")
    clock.advance(6)
    heartbeat(user, "tab-2")
    clock.advance(6)

    assert [e["type"] for e in events_of("presence.user_online") + events_of("presence.user_offline")] == [
        "presence.user_online", "presence.user_online", "presence.user_offline",
    ]  # fmt: skip
    assert statuses_sent() == ["available", "offline", "available"]


def test_a_silent_connection_is_dropped_after_the_stale_threshold(clock, user, settings) -> None:
    settings.PRESENCE_STALE_THRESHOLD_SECONDS = 180
    heartbeat(user, "crashed-tab")

    clock.advance(179)
    assert Connection.objects.filter(connection_id="crashed-tab").exists()
    clock.advance(2)
    assert not Connection.objects.filter(connection_id="crashed-tab").exists()
    clock.advance(6)

    assert state_of(user).status == Status.OFFLINE
    assert [e["data"]["reason"] for e in events_of("presence.user_offline")] == ["timeout"]


def test_a_heartbeat_racing_the_stale_sweep_keeps_its_connection(clock, user, settings) -> None:
    settings.PRESENCE_STALE_THRESHOLD_SECONDS = 180
    heartbeat(user, "tab")
    clock.advance(179, tick=False)
    sweep_at = clock.now()
    clock.advance(1, tick=False)

    with transaction.atomic():
        heartbeat(user, "tab")  # lands just before the sweep's delete, which carries its own cutoff
        timers.drop_stale_connections(sweep_at + __import__("datetime").timedelta(seconds=1))

    assert Connection.objects.filter(connection_id="tab").exists()
    assert state_of(user).online is True


def test_idleness_makes_the_user_away_and_activity_restores_them(clock, user, settings) -> None:
    settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS = 900
    heartbeat(user, "tab", activity="active")
    clock.advance(10)

    for _ in range(8):  # keep-alives prove the connection, not activity
        clock.advance(110)
        heartbeat(user, "tab", activity="idle")
    clock.advance(900 - 10 - 880 - 2)
    assert state_of(user).status == Status.AVAILABLE  # at 898 s
    clock.advance(3)

    state = state_of(user)
    assert state.status == Status.AWAY
    assert state.trigger == Trigger.IDLE_TIMEOUT
    heartbeat(user, "tab", activity="idle")
    clock.advance(6)
    assert state_of(user).status == Status.AWAY

    heartbeat(user, "tab", activity="typing")
    clock.advance(6)
    state = state_of(user)
    assert state.status == Status.AVAILABLE
    assert state.trigger == Trigger.ACTIVITY_RESUME
    assert statuses_sent() == ["available", "away", "available"]


def test_idleness_does_not_touch_a_declared_status(clock, user, settings) -> None:
    settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS = 60
    heartbeat(user, "tab")
    manual_status_set(user=user, status=Status.DO_NOT_DISTURB)
    clock.advance(120)

    assert state_of(user).status == Status.DO_NOT_DISTURB
    assert statuses_sent() == ["do_not_disturb"]


def test_requests_with_the_users_token_are_activity(clock, user, make_api, settings) -> None:
    settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS = 60
    api = make_api(user.organization, "availability:read", user=user)
    clock.advance(61)
    assert state_of(user).status == Status.AWAY

    assert api.get("/api/v1/availability/me").status_code == 200
    clock.advance(6)

    assert state_of(user).status == Status.AVAILABLE
    assert state_of(user).trigger == Trigger.ACTIVITY_RESUME
