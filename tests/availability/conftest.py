import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from jsonschema import Draft7Validator, FormatChecker

from availability.models import UserAvailability
from availability.timers import run_due_timers
from sapien.core.models import User
from sapien.events.models import Event

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/schemas/user-availability-update.schema.json").read_text())
SEED_000 = Draft7Validator(SCHEMA, format_checker=FormatChecker())


class Clock:
    """Time travel for the whole process (``timezone.now()`` included), moved by hand."""

    def __init__(self, traveller: Any) -> None:
        self.traveller = traveller

    def now(self) -> datetime:
        return datetime.now(tz=UTC)

    def advance(self, seconds: float, *, tick: bool = True) -> None:
        """Moves time on, running the timers once per second on the way (as beat does)."""
        remaining = seconds
        while remaining > 0:
            step = min(1.0, remaining)
            self.traveller.shift(timedelta(seconds=step))
            remaining -= step
            if tick:
                run_due_timers()


@pytest.fixture
def clock() -> Iterator[Clock]:
    with time_machine.travel(datetime(2026, 6, 15, 9, 0, tzinfo=UTC), tick=False) as traveller:
        yield Clock(traveller)


@pytest.fixture
def user(organization) -> User:
    return User.objects.create_user("ada@example.com", "correct-horse", organization=organization)


def state_of(user: User) -> UserAvailability:
    return UserAvailability.objects.get(user_id=user.pk)


def events_of(event_type: str) -> list[dict[str, Any]]:
    return [json.loads(e.body) for e in Event.objects.filter(type=event_type).order_by("created_at")]


def statuses_sent() -> list[str]:
    return [body["data"]["availability"]["status"] for body in events_of("user.availability.update")]


def assert_valid_seed_000(body: dict[str, Any]) -> None:
    errors = sorted(SEED_000.iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
