"""The process's sending threads, the count of sends in flight, and the recorder of sends left behind."""

import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from deliveries.claims import ClaimedDelivery
from deliveries.tracing import post_traced
from deliveries.transport import DeliveryRequest, DeliveryResult, post

logger = logging.getLogger(__name__)

InFlight = dict[Future[DeliveryResult], tuple[ClaimedDelivery, uuid.UUID]]  # a send, its delivery and claim
Straggler = tuple[Future[DeliveryResult], ClaimedDelivery, uuid.UUID]


class SenderPool:
    """``concurrency`` sending threads shared by every task of a process; held in a ``PerProcess`` (no fork copies it).

    Sender threads do pure I/O and never touch the database: the submitter decides and records each send, or
    hands it to ``adopt()``, whose recorder thread calls ``record`` with the sends finishing within
    ``gather_seconds`` of each other. Sends in flight when a worker child dies are resent once their lease lapses.
    """

    def __init__(self, *, concurrency: int, record: Callable[[InFlight], None], gather_seconds: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")
        self._record = record
        self._gather_seconds = gather_seconds
        self._lock = threading.Lock()
        self._busy = 0
        self._stragglers: queue.SimpleQueue[Straggler] | None = None

    @property
    def busy(self) -> int:
        """Sends submitted and not finished yet, whichever task submitted them."""
        return self._busy

    def submit(self, request: DeliveryRequest, *, claim: Any = None) -> Future[DeliveryResult]:
        """Sends ``request`` on a sending thread; with tracing on, in an attempt span linked to its ``claim``'s."""
        with self._lock:
            self._busy += 1
        if claim is None:
            future = self._executor.submit(post, request)
        else:
            future = self._executor.submit(post_traced, request, claim=claim)
        future.add_done_callback(self._send_finished)
        return future

    def _send_finished(self, future: Future[DeliveryResult]) -> None:
        with self._lock:
            self._busy -= 1

    def adopt(self, in_flight: InFlight) -> None:
        """Hands sends still in flight to the recorder thread, which records each when it finishes."""
        finished = self._straggler_queue()
        for future, (delivery, token) in in_flight.items():
            future.add_done_callback(functools.partial(_queue_straggler, finished, delivery, token))

    def _straggler_queue(self) -> queue.SimpleQueue[Straggler]:
        with self._lock:
            if self._stragglers is None:
                self._stragglers = queue.SimpleQueue()
                threading.Thread(
                    target=self._record_stragglers, args=(self._stragglers,), name="stragglers", daemon=True
                ).start()
            return self._stragglers

    def _record_stragglers(self, finished: queue.SimpleQueue[Straggler]) -> None:
        while True:
            first = finished.get()
            time.sleep(self._gather_seconds)  # those finishing together are recorded together
            batch = [first]
            while not finished.empty():
                batch.append(finished.get())
            try:
                self._record({future: (delivery, token) for future, delivery, token in batch})
            except Exception:
                logger.exception("Could not record %s straggling deliveries; they will be retried.", len(batch))


def _queue_straggler(
    finished: queue.SimpleQueue[Straggler],
    delivery: ClaimedDelivery,
    token: uuid.UUID,
    future: Future[DeliveryResult],
) -> None:
    finished.put((future, delivery, token))
