"""Timer wake-ups, asked of the relay (``sapien/events/wakeups.py``): a cut in latency, never the only path (beat
ticks every second). They come from requests as well as from workers, and the web process holds no broker
connection."""

from datetime import datetime

from sapien.events.wakeups import RUN_TIMERS, WakeUp, wakeup_request


def wake_at(due: datetime) -> None:
    """Asks for the timers to run at ``due``. Call it once the change that set the timer has committed."""
    wakeup_request(WakeUp(RUN_TIMERS, at=due))
