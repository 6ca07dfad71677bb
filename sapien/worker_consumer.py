"""The Celery consumer of a worker process that runs its own tasks (``sapien.worker``): it acknowledges a message
the moment Celery asks, not on the event loop's next turn.

Celery's consumer hands every acknowledgement to the event loop (``hub.call_soon``), which runs it on its next
turn. kombu's loop takes its ready callbacks at the top of a turn and then polls the sockets, with up to 10 s of
timeout, even when the callbacks it ran queued new ones. With the ``solo`` pool a task runs inside such a
callback (the socket reader that received its message), so its acknowledgement is queued during the turn and
waits through that poll. RabbitMQ sends a consumer nothing past its prefetch window (one message here) until the
acknowledgement comes, so nothing makes the socket readable: the process sat idle up to 10 s with messages
ready in the queue, and a bench run delivered nothing for minutes (docs/benchmarks.md, "The stall with
RabbitMQ"). A prefork parent hid this: its children's pipes wake its loop all the time. Redis was spared because
kombu's Redis transport acknowledges without the broker.

A ``solo`` worker calls for acknowledgements from its one thread, the loop's, so sending the frame at once is
safe; it is what Celery itself does when a worker has no event loop.
"""

import logging
from typing import Any

from celery.worker.consumer import Consumer
from vine import ppartial

logger = logging.getLogger(__name__)


class AcknowledgingConsumer(Consumer):
    def call_soon_ack(self, p: Any, *args: Any, **kwargs: Any) -> Any:
        """Sends the acknowledgement (or rejection) now; Celery's would wait for the loop's next turn. A failure is
        logged, as Celery logs one it sends at once (the message then comes back to the queue, or is dropped with
        its connection: a wake-up either way)."""
        callback = ppartial(p, *args, **kwargs)
        try:
            callback()
        except Exception:
            logger.exception("Acknowledging a task message failed")
        return callback
