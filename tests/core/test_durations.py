"""Every duration setting is read one way: a plain number in the unit its name gives, or a number with a unit."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from sapien.settings import env_duration


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        ("", "s", 42.0),  # unset: the default
        ("180", "s", 180.0),
        ("2.5", "s", 2.5),
        ("500ms", "s", 0.5),
        ("8s", "s", 8.0),
        ("3m", "s", 180.0),
        ("1h", "s", 3600.0),
        ("1000", "ms", 1000.0),
        ("2s", "ms", 2000.0),
        ("1h", "ms", 3_600_000.0),
        ("24", "h", 24.0),
        ("90m", "h", 1.5),
        (" 5S ", "s", 5.0),
    ],
)
def test_a_duration_is_read_in_the_unit_of_its_name_unless_it_names_its_own(monkeypatch, raw, unit, expected) -> None:
    monkeypatch.setenv("SOME_DURATION", raw)

    assert env_duration("SOME_DURATION", 42.0, unit=unit) == expected


@pytest.mark.parametrize("raw", ["-1", "-5s", "soon", "1d", "nan", "inf", "1e999", "ms", "5 m s"])
def test_a_duration_that_is_negative_infinite_or_unreadable_stops_the_process(monkeypatch, raw) -> None:
    monkeypatch.setenv("SOME_DURATION", raw)

    with pytest.raises(ImproperlyConfigured, match="SOME_DURATION"):
        env_duration("SOME_DURATION", 42.0)
