"""``manage.py run_relay``: the outbox relay process.

Listens for the ``NOTIFY`` sent after each committing change that may have a
receiver, relays the outbox and wakes delivery workers; passes at least every
``ESL_RELAY_POLL_SECONDS`` regardless, so a missed notification (or an event
that sends none, ``sapien/events/outbox.py``) costs at most that long. Under
load, passes start at most every ``ESL_RELAY_LINGER_MS`` (``PassPacing``):
fewer, larger passes and hand-overs, for a few milliseconds of latency only
while commits arrive faster than that. Publishes the wake-ups that the code
serving requests asks for (``sapien/events/wakeups.py``), since the web process
holds no broker connection. Several relays may run at once.
"""

import logging
import math
import select
import signal
import time
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connection
from django.utils import timezone

from deliveries.partitions import history_partitions_ensure
from deliveries.relay import relay_and_wake_workers
from deliveries.wakeups import requested_wakeups_publish
from sapien.core import tracing
from sapien.events.outbox import OUTBOX_CHANNEL
from sapien.events.wakeups import WAKEUP_CHANNEL, WakeUp

logger = logging.getLogger("deliveries.relay")


class Command(BaseCommand):
    help = "Runs the outbox relay: fans committed events out into deliveries and wakes the workers."
    # No system checks at start, as gunicorn and Celery run none (``manage.py check --deploy`` is where they run):
    # checking the URLconf would import every view, serializer and the schema machinery into a process serving none.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Relay what is pending, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.running = True
        tracing.start(service="relay")
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if options["once"]:
            self._relay()
            return
        logger.info("Relay started (poll every %ss).", settings.ESL_RELAY_POLL_SECONDS)
        self._ensure_partitions()
        while self.running:
            try:
                self._listen_and_relay()
            except (psycopg.OperationalError, OSError, Exception) as exc:  # noqa: BLE001 - keep relaying
                logger.warning("Relay lost the database (%s); retrying in 1 s.", type(exc).__name__)
                connection.close()
                time.sleep(1)

    def _ensure_partitions(self) -> None:
        """The history's day partitions are ready before the first event is relayed (beat keeps them so)."""
        try:
            history_partitions_ensure(now=timezone.now())
        except DatabaseError as exc:  # a lock held elsewhere, or no database yet: beat will retry
            logger.warning("Could not prepare the history partitions at start (%s); beat will.", type(exc).__name__)

    def _stop(self, *args: Any) -> None:
        self.running = False

    def _relay(self) -> int:
        result = relay_and_wake_workers()
        if result.events:
            logger.debug("Relayed %s events into %s deliveries.", result.events, result.deliveries)
        return result.events

    def _listen_and_relay(self) -> None:
        listener = psycopg.connect(_conninfo(), autocommit=True)
        try:
            listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
            listener.execute(f"LISTEN {WAKEUP_CHANNEL}")
            relay = True
            pacing = PassPacing()
            while self.running:
                if relay:
                    linger = pacing.delay(now=time.monotonic())
                    if linger > 0:
                        time.sleep(linger)
                        self._publish_wakeups(list(listener.notifies(timeout=0)))  # this pass serves the outbox's
                    started = time.monotonic()
                    pacing.passed(started=started, events=self._relay())
                ready, _, _ = select.select([listener.fileno()], [], [], settings.ESL_RELAY_POLL_SECONDS)
                # Drain every queued notification: one relay pass serves all the outbox's, and the wake-ups asked
                # for are published together; a poll that heard nothing relays, and so does one a poll interval
                # after the last pass, however many wake-up requests kept the select from timing out.
                heard = list(listener.notifies(timeout=0)) if ready else []
                relay = (
                    not heard
                    or any(notice.channel == OUTBOX_CHANNEL for notice in heard)
                    or time.monotonic() - pacing.last_start >= settings.ESL_RELAY_POLL_SECONDS
                )
                self._publish_wakeups(heard)
        finally:
            listener.close()

    def _publish_wakeups(self, heard: list[psycopg.Notify]) -> None:
        wakeups = [WakeUp.from_payload(notice.payload) for notice in heard if notice.channel == WAKEUP_CHANNEL]
        requested_wakeups_publish(wakeup for wakeup in wakeups if wakeup is not None)


# Under load: commits lately arrive at least this many per linger interval, on average.
BUSY_EVENTS_PER_LINGER = 1.25
# The arrival rate is judged over about this many linger intervals (the time constant of its decay).
RATE_WINDOW_LINGERS = 10


class PassPacing:
    """When the next relay pass may begin, so that under load the commits of a moment share a pass, its hand-over
    and the worker's task for it: ``ESL_RELAY_LINGER_MS`` after the last pass began, once commits arrive faster
    than that (the last pass found more than one event, or events lately averaged ``BUSY_EVENTS_PER_LINGER`` per
    linger interval); otherwise at once, so that at moderate rates every event goes as soon as it is committed.

    The rate as well as the last pass's count: commits that come evenly rarely find a pass running, even at the
    machine's highest rate, and each had a pass (a hand-over, a task) of its own. Times are ``time.monotonic()``.
    """

    def __init__(self) -> None:
        self.last_start = 0.0
        self.last_events = 0
        self.recent_events = 0.0  # events relayed lately, each counting for less as time passes

    @staticmethod
    def _linger() -> float:
        return settings.ESL_RELAY_LINGER_MS / 1000

    def delay(self, *, now: float) -> float:
        """How long to wait before the next pass."""
        linger = self._linger()
        if linger <= 0:
            return 0.0
        busy = self.last_events > 1 or self.recent_events >= BUSY_EVENTS_PER_LINGER * RATE_WINDOW_LINGERS
        return max(linger - (now - self.last_start), 0.0) if busy else 0.0

    def passed(self, *, started: float, events: int) -> None:
        """A pass that began at ``started`` relayed ``events``."""
        window = RATE_WINDOW_LINGERS * self._linger()
        decay = math.exp(-(started - self.last_start) / window) if window > 0 else 0.0
        self.recent_events = self.recent_events * decay + events
        self.last_start, self.last_events = started, events


def _conninfo() -> str:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if isinstance(v, str | int)})
