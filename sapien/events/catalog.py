"""Every event type Sapien emits, and the subscription patterns that match them.

A subscription names exact types, a family (``person.*``, ``availability.*``)
or everything (``*``).
"""

EVENT_TYPES: dict[str, str] = {
    "person.created": "A person was created.",
    "person.updated": "A person was changed; `changes` lists the fields that changed.",
    "person.deleted": "A person was deleted.",
    "pet.created": "A pet was created.",
    "pet.updated": "A pet was changed; `changes` lists the fields that changed.",
    "pet.deleted": "A pet was deleted.",
    "toy.created": "A toy was created.",
    "toy.updated": "A toy was changed; `changes` lists the fields that changed.",
    "toy.deleted": "A toy was deleted.",
    "availability.changed": "A user's shown availability changed.",
    "availability.profile.created": "An availability profile was created.",
    "availability.profile.updated": "An availability profile was changed.",
    "availability.profile.deleted": "An availability profile was deleted.",
    "availability.schedule.triggered": "A schedule window started or ended.",
    "user.availability.update": "A user's availability changed (seed 000 schema).",
    "presence.user_online": "A user's first live connection opened.",
    "presence.user_offline": "A user's last live connection closed.",
    "system.rate_limit.warning": "80 % of the hourly event quota is used.",
    "system.rate_limit.exceeded": "The hourly event quota is used up; deliveries wait for the next window.",
    "system.maintenance.scheduled": "A maintenance window is announced.",
    "system.subscription.disabled": "A subscription was disabled after repeated failures.",
    "system.subscription.failing": (
        "A subscription's run of failed deliveries reached ESL_FAILING_NOTICE_SHARE of the disabling limit; "
        "once per episode."
    ),
    "system.subscription.recovered": (
        "A subscription told it was failing succeeded again, or a disabled one answered its probe; once per episode."
    ),
    "system.ping": "A test event sent on request.",
}

WILDCARD = "*"


def families() -> set[str]:
    return {event_type.split(".", 1)[0] + ".*" for event_type in EVENT_TYPES}


def is_valid_pattern(pattern: str) -> bool:
    return pattern == WILDCARD or pattern in EVENT_TYPES or pattern in families()


def pattern_matches(pattern: str, event_type: str) -> bool:
    """The rule the relay's SQL applies, in Python (for tests and single sends)."""
    if pattern in (WILDCARD, event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def patterns_match_sql(patterns: str, event_type: str) -> str:
    """SQL that is true when the text array ``patterns`` matches ``event_type`` (as ``pattern_matches``)."""
    return (
        f"EXISTS (SELECT 1 FROM unnest({patterns}) AS pattern WHERE pattern = '*' OR pattern = {event_type}"
        f" OR (right(pattern, 2) = '.*' AND starts_with({event_type}, left(pattern, -1))))"
    )
