"""The process's sending threads, the count of sends in flight, and the recorder of sends left behind."""

import collections
import functools
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from deliveries.claims import ClaimedDelivery
from deliveries.tracing import post_traced
from deliveries.transport import DeliveryRequest, DeliveryResult, post

logger = logging.getLogger(__name__)

InFlight = dict[Future[DeliveryResult], tuple[ClaimedDelivery, uuid.UUID]]  # a send, its delivery and claim
Straggler = tuple[Future[DeliveryResult], ClaimedDelivery, uuid.UUID]
ForRecorder = Straggler | threading.Event  # a send to record, or a request to let go (set once done)

# While sends wait, more threads may start sending when those sending used less than ``IDLE_BELOW`` of a CPU over
# the last ``MEASURE_SECONDS`` or more (they wait on their receivers: others can use the CPU), and one more,
# checked by a watcher thread, when ``STALL_SECONDS`` pass with none finishing (a slow receiver holds every sending
# thread); one stops when they used more than ``BUSY_ABOVE`` (they contend for the CPU: one fewer sends as much).
# A send costs about 0.25 ms of CPU: a receiver answering in L ms keeps about 3 L threads busy, up to the
# concurrency; one answering at once keeps one.
IDLE_BELOW = 0.75
BUSY_ABOVE = 0.9
MEASURE_SECONDS = 0.002
STALL_SECONDS = 0.005


class SenderPool:
    """Up to ``concurrency`` sending threads shared by every task of a process; held in a ``PerProcess`` (no fork
    copies it).

    Sends are taken in order by as few threads as keep the CPU busy: one to begin with, more whenever those
    sending leave the CPU mostly idle, waiting on their receivers (as many as would keep it busy), up to
    ``concurrency``, one fewer whenever they keep it busier than one thread would (see ``IDLE_BELOW``). A thread
    that finds nothing left to send gives its place up. Against receivers that answer at once one thread sends a
    whole batch: threads contending for the interpreter's lock cost more CPU than the sends themselves
    (``python -m bench.sendpath``); a slow receiver still holds only its own thread.

    Sender threads do pure I/O and never touch the database: the submitter decides and records each send, or
    hands it to ``adopt()``, whose recorder thread calls ``record`` with the sends finishing within
    ``gather_seconds`` of each other, and ``idle`` (to let go of what it holds) when none has come for
    ``idle_seconds``. Sends in flight when a worker process dies are resent once their lease lapses.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        record: Callable[[InFlight], None],
        gather_seconds: float,
        idle: Callable[[], None] = lambda: None,
        idle_seconds: float = 60.0,
        stall_seconds: float = STALL_SECONDS,
        idle_below: float = IDLE_BELOW,
    ) -> None:
        self._concurrency = max(concurrency, 1)
        self._stall_seconds = stall_seconds
        self._idle_below = idle_below
        self._record = record
        self._gather_seconds = gather_seconds
        self._idle = idle
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._place_opened = threading.Condition(self._lock)  # idle sending threads wait on it
        self._work_queued = threading.Condition(self._lock)  # the stall watcher waits on it
        self._waiting: collections.deque[tuple[Future[DeliveryResult], Callable[[], DeliveryResult]]]
        self._waiting = collections.deque()
        self._busy = 0  # submitted, not finished
        self._places = 0  # threads allowed to send at once
        self._sending = 0  # threads sending (never more than places)
        self._threads = 0  # threads started; they stay, idle, for the next batch
        self._progress_at = 0.0  # when a send last finished, or a place last opened
        self._sent_cpu = 0.0  # CPU seconds of the sends finished so far
        self._measured_from = (0.0, 0.0)  # (when, sent CPU) the last place opened
        self._watcher: threading.Thread | None = None
        self._stragglers: queue.SimpleQueue[ForRecorder] | None = None

    @property
    def busy(self) -> int:
        """Sends submitted and not finished yet, whichever task submitted them."""
        return self._busy

    @property
    def threads(self) -> int:
        """Sending threads started so far: as many as were ever allowed to send at once."""
        return self._threads

    def submit(self, request: DeliveryRequest, *, claim: Any = None) -> Future[DeliveryResult]:
        """Sends ``request`` on a sending thread; with tracing on, in an attempt span linked to its ``claim``'s."""
        future: Future[DeliveryResult] = Future()
        send = (
            functools.partial(post, request) if claim is None else functools.partial(post_traced, request, claim=claim)
        )
        with self._lock:
            self._busy += 1
            self._waiting.append((future, send))
            if self._places == 0:
                self._open_places(1, time.monotonic())
            if len(self._waiting) == 1:
                self._work_queued.notify()
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._open_places_on_stalls, name="deliver-stalls", daemon=True)
                self._watcher.start()
        return future

    def _open_places(self, places: int, now: float) -> None:
        """Lets ``places`` more threads send (the lock held), starting those that are not idle."""
        self._places += places
        self._progress_at = now
        self._measured_from = (now, self._sent_cpu)
        self._place_opened.notify(places)
        while self._threads < self._places:
            self._threads += 1
            threading.Thread(target=self._send_waiting, name=f"deliver-{self._threads}", daemon=True).start()

    def _send_waiting(self) -> None:
        while True:
            with self._lock:
                while not self._waiting or self._sending >= self._places:
                    self._place_opened.wait()
                future, send = self._waiting.popleft()
                self._sending += 1
            cpu = time.thread_time()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(send())
                except Exception as exc:  # noqa: BLE001 - post() returns failures as outcomes: a bug, for the caller
                    future.set_exception(exc)
            cpu = time.thread_time() - cpu
            with self._lock:
                now = time.monotonic()
                self._sending -= 1
                self._busy -= 1
                self._progress_at = now
                self._sent_cpu += cpu
                if self._waiting:
                    self._fit_places_to_cpu(now)
                else:
                    self._places = self._sending  # nothing left to send: this thread gives its place up

    def _fit_places_to_cpu(self, now: float) -> None:
        """Opens places while the senders leave the CPU idle, gives this thread's up while they contend for it;
        once ``MEASURE_SECONDS`` passed since the places last changed (the lock held, sends waiting)."""
        since, sent_cpu = self._measured_from
        if now - since < MEASURE_SECONDS:
            return
        share = (self._sent_cpu - sent_cpu) / (now - since)  # of a CPU, by the sends finished since
        if share < self._idle_below and self._places < self._concurrency:
            self._open_places(self._more_places(share), now)
        elif share > BUSY_ABOVE and self._places > 1:
            self._places -= 1  # this thread gives its place up: the others keep the CPU busy
            self._measured_from = (now, self._sent_cpu)
            self._work_queued.notify()  # the watcher may open it again, should they all stall

    def _more_places(self, share: float) -> int:
        """As many more places as would bring the senders' CPU share up to ``idle_below`` if each added as much as
        those sending, at least one and at most three per place there is (a share measured over a few sends is
        rough), within the concurrency."""
        wanted = math.ceil(self._places * self._idle_below / max(share, 0.001))
        return min(max(wanted, self._places + 1), 4 * self._places, self._concurrency) - self._places

    def _open_places_on_stalls(self) -> None:
        """Opens a place each time ``stall_seconds`` pass with sends waiting and none finished."""
        with self._lock:
            while True:
                stalled_for = time.monotonic() - self._progress_at
                if not self._waiting or self._places >= self._concurrency:
                    self._work_queued.wait()  # a submit to an empty queue, or a place given up, notifies it
                elif stalled_for < self._stall_seconds:
                    self._work_queued.wait(self._stall_seconds - stalled_for)
                else:
                    self._open_places(1, time.monotonic())

    def adopt(self, in_flight: InFlight) -> None:
        """Hands sends still in flight to the recorder thread, which records each when it finishes."""
        finished = self._straggler_queue()
        for future, (delivery, token) in in_flight.items():
            future.add_done_callback(functools.partial(_queue_straggler, finished, delivery, token))

    def _straggler_queue(self) -> queue.SimpleQueue[ForRecorder]:
        with self._lock:
            if self._stragglers is None:
                self._stragglers = queue.SimpleQueue()
                threading.Thread(
                    target=self._record_stragglers, args=(self._stragglers,), name="stragglers", daemon=True
                ).start()
            return self._stragglers

    def let_go(self, timeout: float = 10.0) -> None:
        """Has the recorder thread call ``idle`` now, after what it was given so far, and waits until it did:
        before its database goes away, for example. Nothing to do when no send was ever adopted."""
        with self._lock:
            stragglers = self._stragglers
        if stragglers is not None:
            done = threading.Event()
            stragglers.put(done)
            done.wait(timeout)

    def _record_stragglers(self, finished: queue.SimpleQueue[ForRecorder]) -> None:
        while True:
            try:
                first = finished.get(timeout=self._idle_seconds)
            except queue.Empty:
                self._call_idle()
                continue
            time.sleep(self._gather_seconds)  # those finishing together are recorded together
            items = [first]
            while not finished.empty():
                items.append(finished.get())
            batch = [item for item in items if not isinstance(item, threading.Event)]
            if batch:
                try:
                    self._record({future: (delivery, token) for future, delivery, token in batch})
                except Exception:
                    logger.exception("Could not record %s straggling deliveries; they will be retried.", len(batch))
            for asked in items:
                if isinstance(asked, threading.Event):
                    self._call_idle()
                    asked.set()

    def _call_idle(self) -> None:
        try:
            self._idle()
        except Exception:
            logger.exception("The straggler recorder could not let go of what it holds while idle.")


def _queue_straggler(
    finished: queue.SimpleQueue[ForRecorder],
    delivery: ClaimedDelivery,
    token: uuid.UUID,
    future: Future[DeliveryResult],
) -> None:
    finished.put((future, delivery, token))
