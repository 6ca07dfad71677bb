"""Schedule windows in a profile's IANA time zone, correct across midnight and DST changes.

A rule names days of the week (Sunday = 0), a start and an end ``HH:MM``; an end
at or before the start crosses midnight, and the day names the window's start.
A start inside a skipped hour begins when the clocks jump past it; an end inside
a repeated hour ends at its first occurrence, so no window triggers twice.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@dataclass(frozen=True)
class Rule:
    days_of_week: frozenset[int]
    start: time
    end: time
    status: str


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime
    status: str


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    if len(hours) != 2 or len(minutes) != 2:
        raise ValueError(value)
    return time(int(hours), int(minutes))


def parse_rules(raw: list[dict[str, Any]]) -> list[Rule]:
    return [
        Rule(
            days_of_week=frozenset(rule["days_of_week"]),
            start=parse_hhmm(rule["start_time"]),
            end=parse_hhmm(rule["end_time"]),
            status=rule["status"],
        )
        for rule in raw
    ]


def is_valid_timezone(name: str) -> bool:
    if name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def first_instant_at_or_after(day: date, wall_time: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the zone's clocks show ``wall_time`` on ``day`` or later."""
    naive = datetime.combine(day, wall_time)
    earlier, later = sorted(
        (naive.replace(tzinfo=zone, fold=0).astimezone(UTC), naive.replace(tzinfo=zone, fold=1).astimezone(UTC))
    )
    if _wall(earlier, zone) == naive:
        return earlier  # exists (its first occurrence when repeated)
    # In a gap: the clocks jump over ``wall_time`` somewhere between the two readings.
    low, high = earlier, later
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _wall(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def sunday_zero_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7


def window_at(rules: list[Rule], timezone_name: str, instant: datetime) -> Window | None:
    """The first rule's window in force at ``instant``, if any."""
    zone = ZoneInfo(timezone_name)
    local_day = instant.astimezone(zone).date()
    for rule in rules:
        crosses_midnight = rule.end <= rule.start
        for start_day in (local_day - timedelta(days=1), local_day):
            if sunday_zero_weekday(start_day) not in rule.days_of_week:
                continue
            starts_at = first_instant_at_or_after(start_day, rule.start, zone)
            end_day = start_day + timedelta(days=1) if crosses_midnight else start_day
            ends_at = first_instant_at_or_after(end_day, rule.end, zone)
            if starts_at <= instant < ends_at:
                return Window(starts_at=starts_at, ends_at=ends_at, status=rule.status)
    return None
