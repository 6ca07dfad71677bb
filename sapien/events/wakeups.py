"""Wake-ups asked of the relay: the code that serves requests never talks to the broker.

The web process loads no Celery, kombu or broker client (about 17 MB of imports in every web worker,
docs/operations.md "The web process"). Where a change makes work due sooner than the periodic sweeps would find
it (a redelivery, a replay, a presence timer), its code asks for a task once its transaction has committed, with
a ``NOTIFY`` on ``WAKEUP_CHANNEL``; the relay, which listens, publishes the task
(``deliveries/management/commands/run_relay.py``). As with a broker message, a request may be lost (no relay
listening at that moment, or the database gone just after the commit): the sweeps still find the work, later
(deliveries every second, availability's timers every second). Every relay running publishes every request it
hears; a wake-up more finds nothing to do.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

WAKEUP_CHANNEL = "sapien_wakeups"

# The tasks a request may ask for, by their Celery names: whatever a NOTIFY says, the relay publishes only these.
DELIVER_DUE = "deliveries.deliver_due"
RUN_TIMERS = "availability.run_timers"
REQUESTABLE = frozenset({DELIVER_DUE, RUN_TIMERS})
# At most this many copies of one task per request (a replay asks for one per batch it filled).
MAX_COUNT = 100


@dataclass(frozen=True)
class WakeUp:
    task: str  # one of REQUESTABLE
    at: datetime | None = None  # when it should run; None: at once
    count: int = 1  # how many workers to wake

    def payload(self) -> str:
        return orjson.dumps({"task": self.task, "at": self.at, "count": self.count}).decode()

    @classmethod
    def from_payload(cls, payload: str) -> "WakeUp | None":
        """The request a ``NOTIFY`` carried, or ``None`` for anything that is not one (logged)."""
        try:
            fields = orjson.loads(payload)
            task, at, count = fields["task"], fields.get("at"), fields.get("count", 1)
            if task not in REQUESTABLE or type(count) is not int or count < 1:
                raise ValueError(task)
            when = datetime.fromisoformat(at) if at is not None else None
            return cls(task=task, at=when, count=min(count, MAX_COUNT))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("Ignored a malformed wake-up request on %s.", WAKEUP_CHANNEL)
            return None


def wakeup_request(wakeup: WakeUp) -> None:
    """Asks the relay for ``wakeup``. Call it after the commit of the change it is for (``transaction.on_commit``):
    a ``NOTIFY`` inside the transaction would serialize the commits of every transaction that sends one. Never
    raises: a lost request only delays the work until a sweep."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [WAKEUP_CHANNEL, wakeup.payload()])
    except DatabaseError:
        logger.warning("Could not ask the relay for a wake-up; the sweep will catch up.")


def wakeups_merged(wakeups: list[WakeUp]) -> list[WakeUp]:
    """The requests a relay heard at once, each distinct one once: for each task and time, the largest count."""
    merged: dict[tuple[str, datetime | None], WakeUp] = {}
    for wakeup in wakeups:
        key = (wakeup.task, wakeup.at)
        if key not in merged or merged[key].count < wakeup.count:
            merged[key] = wakeup
    return list(merged.values())
