"""``manage.py run_relay``: the outbox relay process.

Listens for the ``NOTIFY`` sent after each committing change, relays the outbox
and wakes delivery workers; polls every ``ESL_RELAY_POLL_SECONDS`` regardless, so
a missed notification costs at most that long. Several relays may run at once.
"""

import logging
import select
import signal
import time
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from deliveries.relay import relay_and_wake_workers
from sapien.events.outbox import OUTBOX_CHANNEL

logger = logging.getLogger("deliveries.relay")


class Command(BaseCommand):
    help = "Runs the outbox relay: fans committed events out into deliveries and wakes the workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Relay what is pending, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.running = True
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if options["once"]:
            self._relay()
            return
        logger.info("Relay started (poll every %ss).", settings.ESL_RELAY_POLL_SECONDS)
        while self.running:
            try:
                self._listen_and_relay()
            except (psycopg.OperationalError, OSError, Exception) as exc:  # noqa: BLE001 - keep relaying
                logger.warning("Relay lost the database (%s); retrying in 1 s.", type(exc).__name__)
                connection.close()
                time.sleep(1)

    def _stop(self, *args: Any) -> None:
        self.running = False

    def _relay(self) -> None:
        result = relay_and_wake_workers()
        if result.events:
            logger.debug("Relayed %s events into %s deliveries.", result.events, result.deliveries)

    def _listen_and_relay(self) -> None:
        listener = psycopg.connect(_conninfo(), autocommit=True)
        try:
            listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
            while self.running:
                self._relay()
                ready, _, _ = select.select([listener.fileno()], [], [], settings.ESL_RELAY_POLL_SECONDS)
                if ready:
                    # Drain every queued notification: one relay pass serves them all.
                    for _ in listener.notifies(timeout=0):
                        pass
        finally:
            listener.close()


def _conninfo() -> str:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if isinstance(v, str | int)})
