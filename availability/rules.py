"""The rule that turns both layers into the status shown (docs/availability.md, "The status shown"), as a pure function.

The override's status while one is in force; otherwise ``offline`` while the
user has no live connection; otherwise the manual status, else the schedule
window's, else ``away`` when idle, else ``available``.
"""

from dataclasses import dataclass

from availability.models import Status, Trigger

# Seed 000's priority, highest first: it decides between triggers that arrive together.
TRIGGER_PRIORITY: list[str] = [
    Trigger.SYSTEM_OVERRIDE,
    Trigger.MANUAL,
    Trigger.SESSION_START,
    Trigger.SESSION_END,
    Trigger.SCHEDULE,
    Trigger.IDLE_TIMEOUT,
    Trigger.ACTIVITY_RESUME,
]


@dataclass(frozen=True)
class Claim:
    status: str
    custom_message: str = ""
    expires_at: object = None


@dataclass(frozen=True)
class Layers:
    override: Claim | None
    manual: Claim | None
    online: bool
    schedule_status: str | None
    idle: bool


@dataclass(frozen=True)
class Shown:
    status: str
    custom_message: str
    expires_at: object
    source: str  # which layer decided: override, offline, manual, schedule, idle, default


def shown_status(layers: Layers) -> Shown:
    if layers.override is not None:
        claim = layers.override
        return Shown(claim.status, claim.custom_message, claim.expires_at, "override")
    if not layers.online:
        return Shown(Status.OFFLINE, "", None, "offline")
    if layers.manual is not None:
        claim = layers.manual
        return Shown(claim.status, claim.custom_message, claim.expires_at, "manual")
    if layers.schedule_status:
        return Shown(layers.schedule_status, "", None, "schedule")
    if layers.idle:
        return Shown(Status.AWAY, "", None, "idle")
    return Shown(Status.AVAILABLE, "", None, "default")


def strongest(triggers: list[str]) -> str:
    """Of triggers that arrived together, the one that names the change."""
    return min(triggers, key=TRIGGER_PRIORITY.index)
