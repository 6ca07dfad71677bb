"""Wake-ups over the broker. Losing one only delays work until the next sweep."""

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def wakeups_for(deliveries: int) -> int:
    """How many workers to wake for ``deliveries`` new due deliveries: one per batch they fill."""
    return deliveries // settings.ESL_DELIVERY_BATCH_SIZE + 1


def wake_delivery_workers(count: int = 1) -> None:
    """Asks ``count`` workers to drain due deliveries. Never raises: the sweep is the fallback."""
    # Here, not at the top: deliveries.tasks imports this module.
    from deliveries.tasks import deliver_due

    for _ in range(max(1, min(count, settings.ESL_DELIVERY_WAKEUPS))):
        try:
            deliver_due.apply_async(retry=False)
        except Exception:  # noqa: BLE001 - broker down: the beat sweep and the relay's poll recover
            logger.warning("Could not reach the broker to wake delivery workers; the sweep will catch up.")
            return


def wake_delivery_workers_later(seconds: float) -> None:
    """Asks one worker to claim again in ``seconds``: for deliveries a claim put back to respect their
    subscription's limits (``deliveries/limits.py``), which fall due before the next sweep would notice them.
    Never raises: the sweep is the fallback."""
    from deliveries.tasks import deliver_due

    try:
        deliver_due.apply_async(countdown=seconds, retry=False)
    except Exception:  # noqa: BLE001 - broker down: the beat sweep catches up
        logger.warning("Could not reach the broker to wake delivery workers; the sweep will catch up.")
