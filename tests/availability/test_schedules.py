"""Schedule windows in a profile's time zone: across midnight and across daylight-saving changes."""

from datetime import UTC, datetime

import pytest

from availability.schedules import first_instant_at_or_after, parse_rules, window_at

NIGHT_SHIFT = parse_rules(
    [{"days_of_week": [1], "start_time": "22:00", "end_time": "06:00", "status": "do_not_disturb"}]
)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "active"),
    [
        (utc(2026, 6, 15, 19, 59), False),  # Monday 21:59 in Paris (UTC+2)
        (utc(2026, 6, 15, 20, 0), True),  # Monday 22:00 in Paris
        (utc(2026, 6, 16, 3, 59), True),  # Tuesday 05:59 in Paris: the Monday window, past midnight
        (utc(2026, 6, 16, 4, 0), False),  # Tuesday 06:00: over
        (utc(2026, 6, 16, 20, 30), False),  # Tuesday 22:30: Tuesday is not in the rule
        (utc(2026, 6, 14, 23, 0), False),  # Monday 01:00 belongs to a Sunday window: none
    ],
)
def test_a_window_across_midnight_in_a_non_utc_zone(instant: datetime, active: bool) -> None:
    window = window_at(NIGHT_SHIFT, "Europe/Paris", instant)

    assert (window is not None) is active
    if window is not None:
        assert window.starts_at == utc(2026, 6, 15, 20, 0)
        assert window.ends_at == utc(2026, 6, 16, 4, 0)


def test_a_window_across_the_spring_forward_night_is_an_hour_shorter_in_utc() -> None:
    # New York, Saturday 2026-03-07 22:00 EST to Sunday 06:00 EDT: clocks jump at 02:00.
    rules = parse_rules([{"days_of_week": [6], "start_time": "22:00", "end_time": "06:00", "status": "busy"}])

    window = window_at(rules, "America/New_York", utc(2026, 3, 8, 5, 0))

    assert window is not None
    assert window.starts_at == utc(2026, 3, 8, 3, 0)
    assert window.ends_at == utc(2026, 3, 8, 10, 0)
    assert (window.ends_at - window.starts_at).total_seconds() == 7 * 3600


def test_a_start_inside_the_skipped_hour_begins_when_the_clocks_jump() -> None:
    zone = "America/New_York"
    rules = parse_rules([{"days_of_week": [0], "start_time": "02:30", "end_time": "04:00", "status": "busy"}])

    assert window_at(rules, zone, utc(2026, 3, 8, 6, 59)) is None  # 01:59 EST
    window = window_at(rules, zone, utc(2026, 3, 8, 7, 0))  # 03:00 EDT, the first instant past 02:30
    assert window is not None
    assert window.starts_at == utc(2026, 3, 8, 7, 0)
    assert window.ends_at == utc(2026, 3, 8, 8, 0)


def test_an_end_inside_the_repeated_hour_ends_once_at_its_first_occurrence() -> None:
    # Sunday 2026-11-01, New York: 01:00-02:00 happens twice (EDT, then EST).
    zone = "America/New_York"
    rules = parse_rules([{"days_of_week": [6], "start_time": "22:00", "end_time": "01:30", "status": "away"}])

    assert window_at(rules, zone, utc(2026, 11, 1, 5, 29)) is not None  # 01:29 EDT
    assert window_at(rules, zone, utc(2026, 11, 1, 5, 30)) is None  # 01:30 EDT: over
    assert window_at(rules, zone, utc(2026, 11, 1, 6, 15)) is None  # 01:15 EST, the second pass: no re-trigger


def test_first_instant_of_an_ordinary_wall_time() -> None:
    from datetime import date, time
    from zoneinfo import ZoneInfo

    assert first_instant_at_or_after(date(2026, 1, 5), time(9, 0), ZoneInfo("Asia/Kolkata")) == utc(2026, 1, 5, 3, 30)
