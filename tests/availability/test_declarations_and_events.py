"""Declarations (manual, override, schedule), their expiry, and the events they cause."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from availability.models import ConnectionKind, Status, Trigger
from availability.services.connections import connection_open_or_refresh
from availability.services.declarations import manual_status_clear, manual_status_set, override_lift, override_set
from availability.services.profiles import profile_create
from sapien.core.errors import Conflict
from tests.availability.conftest import assert_valid_seed_000, events_of, state_of, statuses_sent

pytestmark = pytest.mark.django_db


@pytest.fixture
def online_user(clock, user):
    connection_open_or_refresh(
        user=user, kind=ConnectionKind.PRESENCE, connection_id="tab", device_type="web", source="presence_heartbeat"
    )
    clock.advance(6)
    return user


def test_a_manual_status_with_expiry_reverts_on_time_to_what_is_true_now(clock, online_user) -> None:
    expires = clock.now() + timedelta(seconds=60)
    manual_status_set(user=online_user, status=Status.BUSY, custom_message="In a meeting", expires_at=expires)
    clock.advance(59)
    assert state_of(online_user).status == Status.BUSY

    clock.advance(2)

    state = state_of(online_user)
    assert state.status == Status.AVAILABLE
    assert state.trigger == Trigger.MANUAL
    assert state.trigger_source == "expiry"
    last = events_of("user.availability.update")[-1]
    assert last["data"]["trigger"]["source"] == "expiry"
    assert last["data"]["availability"]["previous_status"] == "busy"
    assert events_of("availability.changed")[-1]["metadata"]["source"] == "system"


def test_expiry_recomputes_from_live_state_not_a_snapshot(clock, user) -> None:
    manual_status_set(user=user, status=Status.DO_NOT_DISTURB, expires_at=clock.now() + timedelta(seconds=30))
    clock.advance(1)
    assert state_of(user).status == Status.OFFLINE  # declared while offline
    connection_open_or_refresh(
        user=user, kind=ConnectionKind.PRESENCE, connection_id="tab", device_type="web", source="presence_heartbeat"
    )
    clock.advance(6)
    assert state_of(user).status == Status.DO_NOT_DISTURB

    clock.advance(30)

    assert state_of(user).status == Status.AVAILABLE


def test_a_manual_change_under_an_override_is_refused_and_the_manual_status_returns_after_it(
    clock, online_user
) -> None:
    manual_status_set(user=online_user, status=Status.BUSY)
    override_set(
        user=online_user, status=Status.OFFLINE, actor_id="admin", custom_message="Suspended",
        expires_at=clock.now() + timedelta(seconds=20),
    )  # fmt: skip
    clock.advance(6)
    assert state_of(online_user).status == Status.OFFLINE
    assert state_of(online_user).custom_message == "Suspended"

    with pytest.raises(Conflict):
        manual_status_set(user=online_user, status=Status.AVAILABLE)
    clock.advance(20)

    state = state_of(online_user)
    assert state.status == Status.BUSY
    assert state.trigger == Trigger.SYSTEM_OVERRIDE
    assert state.trigger_source == "expiry"


def test_lifting_the_override_restores_the_computed_status(clock, online_user) -> None:
    override_set(user=online_user, status=Status.DO_NOT_DISTURB, actor_id="admin")
    clock.advance(6)

    override_lift(user=online_user, actor_id="admin")
    clock.advance(6)

    assert state_of(online_user).status == Status.AVAILABLE
    assert statuses_sent() == ["available", "do_not_disturb", "available"]


def test_clearing_the_manual_declaration(clock, online_user) -> None:
    manual_status_set(user=online_user, status=Status.AWAY)
    clock.advance(6)

    manual_status_clear(user=online_user)
    clock.advance(6)

    assert state_of(online_user).status == Status.AVAILABLE


def test_changes_within_100_ms_are_consolidated_into_one_event_with_the_final_state(clock, online_user) -> None:
    sent = len(statuses_sent())
    manual_status_set(user=online_user, status=Status.BUSY)
    clock.advance(0.03, tick=False)
    manual_status_set(user=online_user, status=Status.DO_NOT_DISTURB, custom_message="Presenting")
    clock.advance(0.03, tick=False)
    manual_status_set(user=online_user, status=Status.AWAY)
    clock.advance(1)

    assert statuses_sent()[sent:] == ["away"]


def test_at_most_one_event_per_5_seconds_and_the_latest_state_arrives(clock, online_user) -> None:
    sent = len(statuses_sent())
    manual_status_set(user=online_user, status=Status.BUSY)
    clock.advance(0.2)
    assert statuses_sent()[sent:] == ["busy"]
    first_event_at = clock.now()

    clock.advance(2)
    manual_status_set(user=online_user, status=Status.DO_NOT_DISTURB)
    clock.advance(1)
    manual_status_set(user=online_user, status=Status.AWAY)
    clock.advance(1)
    assert statuses_sent()[sent:] == ["busy"]  # held back: less than 5 s since the last event

    clock.advance(3)
    events = events_of("user.availability.update")[sent:]
    assert [e["data"]["availability"]["status"] for e in events] == ["busy", "away"]
    second_at = datetime.fromisoformat(events[1]["timestamp"].replace("Z", "+00:00"))
    assert second_at - first_event_at >= timedelta(seconds=4.8)
    assert events[1]["data"]["availability"]["previous_status"] == "busy"


def test_a_change_undone_within_the_window_sends_nothing(clock, online_user) -> None:
    sent = len(statuses_sent())
    manual_status_set(user=online_user, status=Status.BUSY)
    clock.advance(0.02, tick=False)
    manual_status_clear(user=online_user)
    clock.advance(6)

    assert statuses_sent()[sent:] == []


def test_the_user_availability_update_event_validates_against_seed_000(clock, online_user) -> None:
    manual_status_set(
        user=online_user, status=Status.BUSY, custom_message="é" * 256,
        expires_at=clock.now() + timedelta(hours=1),
        context={"device_type": "web", "ip_address": "192.168.1.100", "user_agent": "Mozilla/5.0", "session_id": "x"},
    )  # fmt: skip
    clock.advance(1)

    body = events_of("user.availability.update")[-1]
    assert_valid_seed_000(body)
    assert body["version"] == "1.0.0"
    assert body["data"]["organization_id"] == str(online_user.organization_id)
    assert body["data"]["availability"]["custom_message"] == "é" * 256
    assert body["data"]["metadata"] == {
        "device_type": "web",
        "ip_address": "192.168.1.100",
        "user_agent": "Mozilla/5.0",
    }
    for earlier in events_of("user.availability.update"):
        assert_valid_seed_000(earlier)


def test_an_ipv6_client_address_is_left_out_rather_than_sent_invalid(clock, online_user) -> None:
    manual_status_set(user=online_user, status=Status.BUSY, context={"device_type": "api", "ip_address": "::1"})
    clock.advance(1)

    body = events_of("user.availability.update")[-1]
    assert_valid_seed_000(body)
    assert "ip_address" not in body["data"]["metadata"]


def test_availability_changed_carries_seed_001s_fields(clock, online_user) -> None:
    expires = clock.now() + timedelta(hours=2)
    manual_status_set(user=online_user, status=Status.BUSY, custom_message="In meeting", expires_at=expires)
    clock.advance(1)

    body = events_of("availability.changed")[-1]
    assert body["version"] == "1.0"
    assert body["data"] == {
        "user_id": str(online_user.pk), "previous_status": "available", "current_status": "busy",
        "profile_id": None, "effective_until": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "reason": "In meeting",
    }  # fmt: skip
    assert body["metadata"]["source"] == "api"


def test_a_rolled_back_change_sends_nothing(clock, online_user) -> None:
    from django.db import transaction

    sent = len(statuses_sent())
    with pytest.raises(RuntimeError), transaction.atomic():
        manual_status_set(user=online_user, status=Status.BUSY)
        raise RuntimeError

    clock.advance(6)
    assert statuses_sent()[sent:] == []
    assert state_of(online_user).status == Status.AVAILABLE


@pytest.fixture
def long_lived_connections(settings):
    """For jumps of hours: the connection stays live and the user active meanwhile."""
    settings.PRESENCE_STALE_THRESHOLD_SECONDS = 7 * 86400
    settings.AVAILABILITY_IDLE_THRESHOLD_SECONDS = 7 * 86400


def test_a_schedule_window_across_midnight_in_paris_is_applied_and_lifted_on_time(user, long_lived_connections) -> None:
    from tests.availability.conftest import Clock

    # Monday 2026-06-15, 21:59 in Paris (UTC+2)
    with time_machine.travel(datetime(2026, 6, 15, 19, 59, 0, tzinfo=UTC), tick=False) as traveller:
        clock = Clock(traveller)
        connection_open_or_refresh(
            user=user, kind=ConnectionKind.PRESENCE, connection_id="tab", device_type="web", source="presence_heartbeat"
        )
        profile = profile_create(
            owner=user, name="Night shift", timezone="Europe/Paris",
            rules=[{"days_of_week": [1], "start_time": "22:00", "end_time": "06:00", "status": "do_not_disturb"}],
        )  # fmt: skip
        clock.advance(59)
        assert state_of(user).status == Status.AVAILABLE
        clock.advance(2)  # 22:00:01 Paris

        state = state_of(user)
        assert state.status == Status.DO_NOT_DISTURB
        assert state.trigger == Trigger.SCHEDULE
        assert state.profile_id == profile.id
        (applied,) = events_of("availability.schedule.triggered")
        assert applied["data"]["action"] == "applied"
        assert applied["data"]["window_end"] == "2026-06-16T04:00:00.000Z"

        traveller.move_to(datetime(2026, 6, 16, 3, 59, 30, tzinfo=UTC))
        clock.advance(1)
        assert state_of(user).status == Status.DO_NOT_DISTURB
        clock.advance(30)  # 06:00:01 Paris on Tuesday
        assert state_of(user).status == Status.AVAILABLE
        assert [e["data"]["action"] for e in events_of("availability.schedule.triggered")] == ["applied", "lifted"]
        changed = [e for e in events_of("availability.changed") if e["metadata"]["source"] == "schedule"]
        assert [e["data"]["current_status"] for e in changed] == ["do_not_disturb", "available"]


def test_a_schedule_across_the_daylight_saving_change(user, long_lived_connections) -> None:
    from tests.availability.conftest import Clock

    # New York, Saturday 2026-03-07 22:00 EST to Sunday 06:00 EDT (clocks jump at 02:00).
    with time_machine.travel(datetime(2026, 3, 8, 2, 59, 30, tzinfo=UTC), tick=False) as traveller:
        clock = Clock(traveller)
        connection_open_or_refresh(
            user=user, kind=ConnectionKind.PRESENCE, connection_id="tab", device_type="web", source="presence_heartbeat"
        )
        profile_create(
            owner=user, name="Weekend nights", timezone="America/New_York",
            rules=[{"days_of_week": [6], "start_time": "22:00", "end_time": "06:00", "status": "busy"}],
        )  # fmt: skip
        clock.advance(31)
        assert state_of(user).status == Status.BUSY

        traveller.move_to(datetime(2026, 3, 8, 9, 59, 30, tzinfo=UTC))  # 05:59:30 EDT
        clock.advance(1)
        assert state_of(user).status == Status.BUSY
        clock.advance(30)  # 06:00 EDT = 10:00 UTC, not 11:00

        assert state_of(user).status == Status.AVAILABLE
        assert [e["data"]["action"] for e in events_of("availability.schedule.triggered")] == ["applied", "lifted"]


def test_manual_status_outranks_the_schedule(clock, online_user) -> None:
    now_local_day = (clock.now().weekday() + 1) % 7
    profile_create(
        owner=online_user, name="All day", timezone="UTC",
        rules=[{"days_of_week": [now_local_day], "start_time": "00:00", "end_time": "23:59", "status": "busy"}],
    )  # fmt: skip
    clock.advance(6)
    assert state_of(online_user).status == Status.BUSY

    manual_status_set(user=online_user, status=Status.AVAILABLE)
    clock.advance(6)
    assert state_of(online_user).status == Status.AVAILABLE

    manual_status_clear(user=online_user)
    clock.advance(6)
    assert state_of(online_user).status == Status.BUSY
