"""Wake-ups over the broker, from the processes that hold a broker connection: the relay and the workers.
Losing one only delays work until the next sweep. The code that serves requests asks the relay instead
(``sapien/events/wakeups.py``), which publishes what it asks for here."""

import logging
from collections.abc import Callable, Iterable
from functools import partial

from django.conf import settings

from sapien.events.wakeups import DELIVER_DUE, WakeUp, wakeups_merged

logger = logging.getLogger(__name__)


def wakeups_for(deliveries: int) -> int:
    """How many workers to wake for ``deliveries`` new due deliveries: one per batch they fill."""
    return deliveries // settings.ESL_DELIVERY_BATCH_SIZE + 1


def wake_delivery_workers(count: int = 1) -> None:
    """Asks ``count`` workers to drain due deliveries. Never raises: the sweep is the fallback."""
    # Here, not at the top: deliveries.tasks imports this module.
    from deliveries.tasks import deliver_due

    _publish(partial(deliver_due.apply_async, retry=False), copies=max(1, min(count, settings.ESL_DELIVERY_WAKEUPS)))


def wake_delivery_workers_later(seconds: float) -> None:
    """Asks one worker to claim again in ``seconds``: for deliveries a claim put back to respect their
    subscription's limits (``deliveries/limits.py``), which fall due before the next sweep would notice them.
    Never raises: the sweep is the fallback."""
    from deliveries.tasks import deliver_due

    _publish(partial(deliver_due.apply_async, countdown=seconds, retry=False))


def requested_wakeups_publish(wakeups: Iterable[WakeUp]) -> None:
    """Publishes the wake-ups the relay was asked for (``sapien/events/wakeups.py``), each distinct one once, by
    task name: availability's timers too, whose tasks this app does not import. Never raises."""
    from deliveries.tasks import deliver_due  # Sapien's app, checked (sapien/core/celery_app.py)

    for wakeup in wakeups_merged(list(wakeups)):
        copies = min(wakeup.count, settings.ESL_DELIVERY_WAKEUPS) if wakeup.task == DELIVER_DUE else 1
        send = partial(deliver_due.app.send_task, wakeup.task, eta=wakeup.at, retry=False)
        if not _publish(send, copies=copies):
            return


def _publish(send: Callable[[], object], *, copies: int = 1) -> bool:
    """Calls ``send`` ``copies`` times, stopping at the first the broker refuses (logged): False then."""
    for _ in range(copies):
        try:
            send()
        except Exception:  # noqa: BLE001 - broker down: the beat sweeps (and the relay's poll) recover
            logger.warning("Could not reach the broker to wake workers; the sweep will catch up.")
            return False
    return True
