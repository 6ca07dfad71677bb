"""Celery tasks: thin interfaces to the services; idempotent, primitives only."""

from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from deliveries import claims, dispatch, relay, retention
from deliveries.handoff import HandedBatch
from deliveries.wakeups import wake_delivery_workers
from sapien.core.celery_app import require_sapien_app
from subscriptions.health import subscriptions_probe_due

require_sapien_app(__name__)  # before any task binds to an app (sapien/core/celery_app.py)


@shared_task(name="deliveries.deliver_due", ignore_result=True)
def deliver_due(**kwargs: Any) -> int:
    run = dispatch.send_due_deliveries(
        batch_size=settings.ESL_DELIVERY_BATCH_SIZE, max_seconds=settings.ESL_DELIVERY_TASK_SECONDS
    )
    if run.time_up and claims.has_due_deliveries():
        wake_delivery_workers(1)  # time ran out with work left: hand over rather than hog the worker
    return run.handled


@shared_task(name="deliveries.deliver_claimed", ignore_result=True)
def deliver_claimed(*, token: str, ids: list[str], since: str, until: str, **kwargs: Any) -> int:
    """Sends a batch the relay handed over born claimed (``deliveries/handoff.py``)."""
    handed = HandedBatch.from_message(token=token, ids=ids, since=since, until=until)
    run = dispatch.send_due_deliveries(
        batch_size=settings.ESL_DELIVERY_BATCH_SIZE, max_seconds=settings.ESL_DELIVERY_TASK_SECONDS, handed=handed
    )
    return run.handled


@shared_task(name="deliveries.sweep_due", ignore_result=True)
def sweep_due(**kwargs: Any) -> None:
    if claims.has_due_deliveries():
        wake_delivery_workers(settings.ESL_DELIVERY_WAKEUPS)


@shared_task(name="deliveries.relay_outbox", ignore_result=True)
def relay_outbox(**kwargs: Any) -> int:
    return relay.relay_and_wake_workers().events


@shared_task(name="deliveries.purge_expired", ignore_result=True)
def purge_expired(**kwargs: Any) -> int:
    return retention.purge_expired().days


@shared_task(name="deliveries.probe_disabled", ignore_result=True)
def probe_disabled(**kwargs: Any) -> int:
    """The half-open probe's pass: a signed ping to each disabled subscription whose probe is due."""
    return subscriptions_probe_due(now=timezone.now())
