"""Timer wake-ups over the broker: a cut in latency, never the only path (beat ticks every second)."""

import logging
from datetime import datetime

logger = logging.getLogger(__name__)


def wake_at(due: datetime) -> None:
    # Here, not at the top: availability.tasks imports this module (through timers and services.connections).
    from availability.tasks import run_timers

    try:
        run_timers.apply_async(eta=due, retry=False)
    except Exception:  # noqa: BLE001 - broker down: the beat tick catches up
        logger.warning("Could not reach the broker to set an availability timer; the tick will catch up.")
