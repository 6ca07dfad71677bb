"""The status rule of docs/availability.md "The status shown", as a table of cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from availability.models import Status, Trigger
from availability.rules import TRIGGER_PRIORITY, Claim, Layers, shown_status, strongest

OVERRIDE = Claim(Status.OFFLINE, "Account suspended")
MANUAL_DND = Claim(Status.DO_NOT_DISTURB, "Focus")


@pytest.mark.parametrize(
    ("override", "manual", "online", "schedule", "idle", "expected", "decided_by"),
    [
        # the override wins over everything, connections included
        (OVERRIDE, MANUAL_DND, True, "busy", True, Status.OFFLINE, "override"),
        (Claim(Status.BUSY), None, False, None, False, Status.BUSY, "override"),
        # no live connection: offline, whatever is declared below the override
        (None, MANUAL_DND, False, "busy", False, Status.OFFLINE, "offline"),
        (None, None, False, None, True, Status.OFFLINE, "offline"),
        # online: manual over schedule over idle
        (None, MANUAL_DND, True, "busy", True, Status.DO_NOT_DISTURB, "manual"),
        (None, Claim(Status.AVAILABLE), True, "busy", True, Status.AVAILABLE, "manual"),
        (None, None, True, "busy", True, Status.BUSY, "schedule"),
        (None, None, True, None, True, Status.AWAY, "idle"),
        (None, None, True, None, False, Status.AVAILABLE, "default"),
    ],
)
def test_the_status_shown(override, manual, online, schedule, idle, expected, decided_by) -> None:
    shown = shown_status(Layers(override=override, manual=manual, online=online, schedule_status=schedule, idle=idle))

    assert shown.status == expected
    assert shown.source == decided_by


def test_the_override_message_is_shown() -> None:
    shown = shown_status(Layers(override=OVERRIDE, manual=None, online=True, schedule_status=None, idle=False))

    assert shown.custom_message == "Account suspended"


@pytest.mark.parametrize(
    ("together", "named"),
    [
        ([Trigger.IDLE_TIMEOUT, Trigger.SYSTEM_OVERRIDE], Trigger.SYSTEM_OVERRIDE),
        ([Trigger.SCHEDULE, Trigger.MANUAL], Trigger.MANUAL),
        ([Trigger.SCHEDULE, Trigger.SESSION_START], Trigger.SESSION_START),
        ([Trigger.ACTIVITY_RESUME, Trigger.SCHEDULE], Trigger.SCHEDULE),
        ([Trigger.SESSION_END, Trigger.MANUAL, Trigger.SYSTEM_OVERRIDE], Trigger.SYSTEM_OVERRIDE),
    ],
)
def test_seed_000_priority_names_the_change_when_triggers_arrive_together(together: list[str], named: str) -> None:
    assert strongest(together) == named


def test_the_priority_list_is_seed_000s() -> None:
    assert TRIGGER_PRIORITY == [
        "system_override", "manual", "session_start", "session_end", "schedule", "idle_timeout", "activity_resume",
    ]  # fmt: skip


statuses = st.sampled_from([s.value for s in Status])
claims = st.none() | st.builds(Claim, statuses)


@given(override=claims, manual=claims, online=st.booleans(), schedule=st.none() | statuses, idle=st.booleans())
def test_the_rule_is_total_and_respects_the_layers(override, manual, online, schedule, idle) -> None:
    shown = shown_status(Layers(override=override, manual=manual, online=online, schedule_status=schedule, idle=idle))

    assert shown.status in {s.value for s in Status}
    if override is not None:
        assert shown.status == override.status
    elif not online:
        assert shown.status == Status.OFFLINE
    elif manual is not None:
        assert shown.status == manual.status
    elif schedule:
        assert shown.status == schedule
    else:
        assert shown.status == (Status.AWAY if idle else Status.AVAILABLE)
