"""The Celery app and the beat schedule.

Celery carries wake-ups only: what is due lives in PostgreSQL, and the periodic
sweeps below guarantee progress when a message is lost.
"""

import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_shutdown
from django.db import close_old_connections

from sapien.core import tracing
from sapien.core.broker_probe import REDIS_SCHEMES
from sapien.core.celery_app import APP_NAME
from sapien.core.context import bind_context, clear_context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
# Celery runs Django's system checks when a worker starts, unless told not to; checking the URLconf imports
# every view, serializer and the OpenAPI machinery into processes that serve none (about 10 MB each, children
# included). The checks run where they belong: ``manage.py check`` and ``migrate``.
os.environ.setdefault("CELERY_SKIP_CHECKS", "true")

logger = logging.getLogger(__name__)


def _patch_redis_channel(method: str, patched: Callable[[Any], Any]) -> None:
    """Replaces kombu's ``redis.Channel.<method>`` with ``patched(original)``, once per process, and only with a
    Redis broker: the transport imports redis-py, about 10 MB in every process that loads it."""
    from django.conf import settings

    if urlsplit(settings.CELERY_BROKER_URL).scheme not in REDIS_SCHEMES:
        return
    from kombu.transport import redis as kombu_redis

    original = getattr(kombu_redis.Channel, method)
    if getattr(original, "sapien_patched", False):
        return
    replacement = patched(original)
    replacement.sapien_patched = True
    setattr(kombu_redis.Channel, method, replacement)


def _close_surviving_connection_loss(original_close: Any) -> Any:
    """Keeps a worker alive when Redis goes away (kombu 5.x, Redis transport).

    On a lost connection the worker closes its channel, and the channel tries to
    restore unacknowledged messages through a connection that is already gone:
    ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which ends
    the worker. Our messages are only wake-ups (PostgreSQL holds what is due), so
    skipping that restore loses nothing; the worker then reconnects as usual.
    """

    def close(self: Any) -> None:
        try:
            original_close(self)
        except AttributeError:
            logger.warning("Broker connection already gone while closing a channel; reconnecting.")

    return close


def _one_client_per_pool(original_create_client: Any) -> Any:
    """A kombu Redis channel builds a new ``redis.Redis`` for every command it sends outside its consumer's
    (each publish, each queue size): 70 µs of redis-py's set-up per command, for a client that holds nothing but
    its connection pool. Each channel keeps one per pool instead (a new pool after a reconnection gets a new
    client); a ``redis.Redis`` takes a connection from its pool for each command, so sharing one is safe.
    """

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original_create_client(self, asynchronous=True)
        pool, kept = self.pool, self.__dict__.get("_sapien_client")
        if kept is None or kept.connection_pool is not pool:
            kept = self.__dict__["_sapien_client"] = original_create_client(self)
        return kept

    return _create_client


_patch_redis_channel("close", _close_surviving_connection_loss)
_patch_redis_channel("_create_client", _one_client_per_pool)


app = Celery(APP_NAME)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["deliveries", "availability"])

app.conf.beat_schedule = {
    "relay-outbox-sweep": {"task": "deliveries.relay_outbox", "schedule": 5.0},
    "deliver-due-sweep": {"task": "deliveries.sweep_due", "schedule": 1.0},
    "availability-timers": {"task": "availability.run_timers", "schedule": 1.0},
    "retention-purge": {"task": "deliveries.purge_expired", "schedule": 300.0},
    "subscription-probes": {"task": "deliveries.probe_disabled", "schedule": 15.0},
}


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, **kwargs: Any) -> None:
    """Each task run gets its own correlation id, so its events and log lines can be told apart."""
    bind_context(correlation_id=f"task_{task_id}", source="system")


@task_prerun.connect
def _check_database_connection(**kwargs: Any) -> None:
    """What Django does before each request, before each task: the connection is kept between tasks
    (``CELERY_DB_REUSE_MAX``), unless it is past ``CONN_MAX_AGE`` or errored; and the first query checks it is
    still alive, so a task after a database restart reconnects instead of failing."""
    close_old_connections()


@task_postrun.connect
def _clear_task_context(**kwargs: Any) -> None:
    clear_context()


@worker_process_init.connect
def _start_tracing(**kwargs: Any) -> None:
    """Each worker process sets tracing up once forked, when configured (``sapien.core.tracing``): its ``solo``
    pool sends this as it starts (``sapien.worker``)."""
    tracing.start(service="worker")


@worker_shutdown.connect
def _flush_traces(**kwargs: Any) -> None:
    tracing.flush()
