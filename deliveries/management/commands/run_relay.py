"""``manage.py run_relay``: the outbox relay process.

Listens for the ``NOTIFY`` sent after each committing change that may have a
receiver, relays the outbox and wakes delivery workers; passes at least every
``ESL_RELAY_POLL_SECONDS`` regardless, so a missed notification (or an event
that sends none, ``sapien/events/outbox.py``) costs at most that long. Under
load, passes start at most every ``ESL_RELAY_LINGER_MS`` (``lingering()``):
fewer, larger passes and hand-overs, for a few milliseconds of latency only
while commits arrive faster than passes. Publishes the wake-ups that the code
serving requests asks for (``sapien/events/wakeups.py``), since the web process
holds no broker connection. Several relays may run at once.
"""

import logging
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
            last_pass, last_events = 0.0, 0
            while self.running:
                if relay:
                    linger = lingering(since_last_pass=time.monotonic() - last_pass, last_events=last_events)
                    if linger > 0:
                        time.sleep(linger)
                        self._publish_wakeups(list(listener.notifies(timeout=0)))  # this pass serves the outbox's
                    last_pass = time.monotonic()
                    last_events = self._relay()
                ready, _, _ = select.select([listener.fileno()], [], [], settings.ESL_RELAY_POLL_SECONDS)
                # Drain every queued notification: one relay pass serves all the outbox's, and the wake-ups asked
                # for are published together; a poll that heard nothing relays, and so does one a poll interval
                # after the last pass, however many wake-up requests kept the select from timing out.
                heard = list(listener.notifies(timeout=0)) if ready else []
                relay = (
                    not heard
                    or any(notice.channel == OUTBOX_CHANNEL for notice in heard)
                    or time.monotonic() - last_pass >= settings.ESL_RELAY_POLL_SECONDS
                )
                self._publish_wakeups(heard)
        finally:
            listener.close()

    def _publish_wakeups(self, heard: list[psycopg.Notify]) -> None:
        wakeups = [WakeUp.from_payload(notice.payload) for notice in heard if notice.channel == WAKEUP_CHANNEL]
        requested_wakeups_publish(wakeup for wakeup in wakeups if wakeup is not None)


def lingering(*, since_last_pass: float, last_events: int) -> float:
    """How long the next pass waits, so that the commits of that moment share it (and its hand-over): under load
    (the last pass found more than one event: commits arrive faster than passes), until ``ESL_RELAY_LINGER_MS``
    after the last pass began; otherwise not at all, so that a lone event goes at once."""
    if last_events < 2:
        return 0.0
    return max(settings.ESL_RELAY_LINGER_MS / 1000 - since_last_pass, 0.0)


def _conninfo() -> str:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if isinstance(v, str | int)})
