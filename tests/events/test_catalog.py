"""The subscription pattern rule in Python and its SQL twin in the relay answer alike, pair by pair."""

import pytest
from django.db import connection

from sapien.events.catalog import EVENT_TYPES, families, pattern_matches, patterns_match_sql

# Every pattern a subscription may hold, and spellings near them that must match nothing more than they say.
PATTERNS = sorted(
    {"*", *EVENT_TYPES, *families(), "person", "person.", "*.created", "person.**", ".*", "", "system.rate_limit.*"}
)
# Every type emitted, and types that a sloppy prefix rule would let through.
EVENT_TYPE_CASES = sorted({*EVENT_TYPES, "personal.created", "person", "person.", "system.rate_limit", "x.y.z"})


@pytest.mark.django_db
def test_the_sql_matcher_agrees_with_pattern_matches_on_every_pair() -> None:
    pairs = [(pattern, event_type) for pattern in PATTERNS for event_type in EVENT_TYPE_CASES]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p, t, {patterns_match_sql('ARRAY[p]', 't')} FROM unnest(%s::text[], %s::text[]) AS pair(p, t)",
            [[p for p, _ in pairs], [t for _, t in pairs]],
        )
        in_sql = {(pattern, event_type): matched for pattern, event_type, matched in cursor.fetchall()}

    in_python = {(pattern, event_type): pattern_matches(pattern, event_type) for pattern, event_type in pairs}
    assert in_sql == in_python
    assert sum(in_python.values()) > len(EVENT_TYPES)  # the table holds matches, not only refusals


@pytest.mark.parametrize(
    ("pattern", "event_type", "matches"),
    [
        ("*", "person.created", True),
        ("person.created", "person.created", True),
        ("person.*", "person.deleted", True),
        ("person.*", "personal.created", False),
        ("person.*", "pet.created", False),
        ("system.rate_limit.*", "system.rate_limit.warning", True),
        ("person", "person.created", False),
        ("*.created", "person.created", False),
    ],
)
def test_pattern_matches_exact_types_families_and_everything(pattern: str, event_type: str, matches: bool) -> None:
    assert pattern_matches(pattern, event_type) is matches
