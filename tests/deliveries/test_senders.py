"""The sending threads: as few as keep the CPU busy, one more while those sending wait on their receivers or
stall, never more than the concurrency.

The test receiver runs in this process and answers in up to 40 ms (delayed ACKs), so most tests here turn the
CPU rule off (``idle_below=0``) and check the stall rule alone, with stalls far longer than any of its answers."""

import threading
import time
from collections.abc import Iterator

import pytest

from deliveries import transport
from deliveries.senders import SenderPool
from deliveries.transport import DeliveryRequest, DeliveryResult
from tests.support.receiver import ReceivedRequest, Receiver, Reply


@pytest.fixture
def loopback_callbacks(e2e_settings) -> Iterator[None]:
    transport._connections.reset()  # the connections are made for the current setting
    yield
    transport._connections.reset()


def pool(*, concurrency: int, stall_seconds: float, idle_below: float = 0.0) -> SenderPool:
    return SenderPool(concurrency=concurrency, record=lambda finished: None, gather_seconds=0.05,
                      stall_seconds=stall_seconds, idle_below=idle_below)  # fmt: skip


def request(receiver: Receiver, path: str) -> DeliveryRequest:
    return DeliveryRequest(url=f"{receiver.url}{path}", body=b"{}", headers={"Content-Type": "application/json"})


def send_all(senders: SenderPool, receiver: Receiver, paths: list[str]) -> list[DeliveryResult]:
    """Submits a send to each path at once, waits for every result, and closes the receiver."""
    try:
        futures = [senders.submit(request(receiver, path)) for path in paths]
        return [future.result(timeout=10) for future in futures]
    finally:
        receiver.close()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sends_that_never_stall_take_one_thread_in_the_order_submitted(loopback_callbacks) -> None:
    receiver = Receiver()
    senders = pool(concurrency=8, stall_seconds=5.0)  # no answer takes that long

    results = send_all(senders, receiver, [f"/{n}" for n in range(40)])

    assert [result.status_code for result in results] == [200] * 40
    assert [r.path for r in receiver.requests] == [f"/hooks/{n}" for n in range(40)]  # in the order submitted
    assert senders.threads == 1
    assert senders.busy == 0


def test_a_slow_receiver_holds_only_its_own_thread(loopback_callbacks) -> None:
    answer_slow = threading.Event()

    def respond(received: ReceivedRequest) -> Reply:
        if received.path == "/hooks/slow":
            answer_slow.wait(10)
        return 200, {}, b"ok"

    receiver = Receiver(responder=respond)
    senders = pool(concurrency=8, stall_seconds=0.5)
    try:
        slow = senders.submit(request(receiver, "/slow"))
        fast = [senders.submit(request(receiver, f"/fast-{n}")) for n in range(10)]
        fast_results = [future.result(timeout=10) for future in fast]  # while the slow one is still unanswered
        slow_was_done = slow.done()
        answer_slow.set()
        slow_result = slow.result(timeout=10)
    finally:
        answer_slow.set()
        receiver.close()

    assert not slow_was_done
    assert [result.status_code for result in fast_results] == [200] * 10
    assert slow_result.status_code == 200
    assert senders.threads == 2  # the slow send's, and one opened when the sends behind it stalled


def test_stalled_sends_open_places_up_to_the_concurrency_and_no_further(loopback_callbacks) -> None:
    answer = threading.Event()
    receiver = Receiver(responder=lambda received: (answer.wait(10), (200, {}, b"ok"))[1])
    senders = pool(concurrency=3, stall_seconds=0.01)
    try:
        futures = [senders.submit(request(receiver, f"/{n}")) for n in range(6)]
        receiver.wait_for(3)
        time.sleep(0.3)  # thirty stalls: none may open a fourth place
        arrived_while_held, busy_while_held = len(receiver.requests), senders.busy
        answer.set()
        results = [future.result(timeout=10) for future in futures]
    finally:
        answer.set()
        receiver.close()

    assert arrived_while_held == 3
    assert busy_while_held == 6
    assert [result.status_code for result in results] == [200] * 6
    assert senders.threads == 3
    assert senders.busy == 0


def test_threads_a_stall_started_are_reused_rather_than_started_again(loopback_callbacks) -> None:
    answer = threading.Event()
    receiver = Receiver(responder=lambda received: (answer.wait(10), (200, {}, b"ok"))[1])
    senders = pool(concurrency=4, stall_seconds=0.01)
    try:
        for _ in range(2):
            answer.clear()
            futures = [senders.submit(request(receiver, "/held")) for _ in range(4)]
            wait_until(lambda: senders.threads == 4)
            answer.set()
            assert [future.result(timeout=10).status_code for future in futures] == [200] * 4
            wait_until(lambda: senders.busy == 0)
    finally:
        answer.set()
        receiver.close()

    assert senders.threads == 4


def test_sends_waiting_on_their_receiver_open_places_while_the_cpu_stays_idle(loopback_callbacks) -> None:
    def answer_after_50_ms(received: ReceivedRequest) -> Reply:
        time.sleep(0.05)
        return 200, {}, b"ok"

    receiver = Receiver(responder=answer_after_50_ms)
    senders = pool(concurrency=6, stall_seconds=5.0, idle_below=0.5)  # no stall: only the CPU rule opens places

    results = send_all(senders, receiver, [f"/{n}" for n in range(30)])

    assert [result.status_code for result in results] == [200] * 30
    assert senders.threads == 6  # each answer takes 50 ms, a send's CPU well under 1 ms: every place opened


class RecorderLog:
    """What a pool's recorder thread was asked to do, in order: ``record`` with how many sends, or ``idle``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def record(self, finished) -> None:
        self.calls.append(f"record {len(finished)}")

    def idle(self) -> None:
        self.calls.append("idle")


def recorded_pool(log: RecorderLog, *, idle_seconds: float) -> SenderPool:
    return SenderPool(concurrency=2, record=log.record, gather_seconds=0.01, idle=log.idle, idle_seconds=idle_seconds)


def adopt_one(senders: SenderPool, receiver: Receiver) -> None:
    """A send handed to the recorder, as a task does when it returns with it in flight."""
    future = senders.submit(request(receiver, "/straggler"))
    senders.adopt({future: (object(), None)})  # type: ignore[dict-item]  # the recorder only passes them on


def test_the_recorder_keeps_what_it_holds_between_records_and_lets_go_once_none_came_for_its_idle_time(
    loopback_callbacks,
) -> None:
    log = RecorderLog()
    receiver = Receiver()
    senders = recorded_pool(log, idle_seconds=2.0)  # far longer than a record takes on a busy machine
    try:
        adopt_one(senders, receiver)
        wait_until(lambda: log.calls == ["record 1"])
        adopt_one(senders, receiver)
        wait_until(lambda: len(log.calls) == 2)
        wait_until(lambda: len(log.calls) == 3)
    finally:
        receiver.close()

    assert log.calls == ["record 1", "record 1", "idle"]


def test_letting_go_has_the_recorder_go_idle_at_once_and_a_send_still_in_flight_is_recorded_when_it_finishes(
    loopback_callbacks,
) -> None:
    log = RecorderLog()
    answer = threading.Event()
    receiver = Receiver(responder=lambda received: (answer.wait(10), (200, {}, b"ok"))[1])
    senders = recorded_pool(log, idle_seconds=60.0)
    try:
        adopt_one(senders, receiver)
        letting_go = threading.Thread(target=senders.let_go)
        letting_go.start()
        letting_go.join(10)
        let_go = not letting_go.is_alive()
        calls_then = list(log.calls)
        answer.set()
        wait_until(lambda: len(log.calls) == 2)
    finally:
        answer.set()
        receiver.close()

    assert let_go and calls_then == ["idle"]  # nothing recorded yet: the send was still waiting for its answer
    assert log.calls == ["idle", "record 1"]


def test_letting_go_of_a_pool_that_never_adopted_a_send_returns_at_once() -> None:
    log = RecorderLog()

    recorded_pool(log, idle_seconds=60.0).let_go(timeout=0)

    assert log.calls == []
