"""The Celery app and the beat schedule.

Celery carries wake-ups only: what is due lives in PostgreSQL, and the periodic
sweeps below guarantee progress when a message is lost.
"""

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from kombu.transport import redis as kombu_redis

from sapien.core.context import bind_context, clear_context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")

logger = logging.getLogger(__name__)


def _survive_redis_channel_close_after_connection_loss() -> None:
    """Keeps a worker alive when Redis goes away (kombu 5.x, Redis transport).

    On a lost connection the worker closes its channel, and the channel tries to
    restore unacknowledged messages through a connection that is already gone:
    ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which ends
    the worker. Our messages are only wake-ups (PostgreSQL holds what is due), so
    skipping that restore loses nothing; the worker then reconnects as usual.
    """
    original_close = kombu_redis.Channel.close
    if getattr(original_close, "sapien_tolerant", False):
        return

    def close(self: Any) -> None:
        try:
            original_close(self)
        except AttributeError:
            logger.warning("Broker connection already gone while closing a channel; reconnecting.")

    close.sapien_tolerant = True  # type: ignore[attr-defined]
    kombu_redis.Channel.close = close  # type: ignore[method-assign]


_survive_redis_channel_close_after_connection_loss()

app = Celery("sapien")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["deliveries", "availability"])

app.conf.beat_schedule = {
    "relay-outbox-sweep": {"task": "deliveries.relay_outbox", "schedule": 5.0},
    "deliver-due-sweep": {"task": "deliveries.sweep_due", "schedule": 1.0},
    "availability-timers": {"task": "availability.run_timers", "schedule": 1.0},
    "retention-purge": {"task": "deliveries.purge_expired", "schedule": 300.0},
}


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, **kwargs: Any) -> None:
    """Each task run gets its own correlation id, so its events and log lines can be told apart."""
    bind_context(correlation_id=f"task_{task_id}", source="system")


@task_postrun.connect
def _clear_task_context(**kwargs: Any) -> None:
    clear_context()
