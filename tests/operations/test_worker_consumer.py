"""A worker process's consumer (``sapien.worker_consumer``) acknowledges a message at once, not on the event loop's
next turn: a ``solo`` process's acknowledgement queued on the loop waited through its next poll, up to 10 s, while
RabbitMQ held the next message back for it."""

import logging

import pytest
from kombu.asynchronous import Hub
from kombu.asynchronous.timer import Timer

from sapien.worker_consumer import AcknowledgingConsumer


def consumer_on(hub: Hub) -> AcknowledgingConsumer:
    consumer = AcknowledgingConsumer.__new__(AcknowledgingConsumer)  # only the hub matters to an acknowledgement
    consumer.hub = hub
    return consumer


def test_an_acknowledgement_is_sent_before_call_soon_ack_returns_and_nothing_waits_on_the_loop() -> None:
    hub, sent = Hub(timer=Timer()), list[str]()
    try:
        consumer_on(hub).call_soon_ack(sent.append, "ack")

        assert sent == ["ack"]
        assert not hub._ready  # nothing left for the loop's next turn
    finally:
        hub.close()


def test_a_failing_acknowledgement_is_logged_and_leaves_the_worker_running(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub(timer=Timer())

    def lost(*_: object) -> None:
        raise ConnectionResetError("gone")

    try:
        with caplog.at_level(logging.ERROR, logger="sapien.worker_consumer"):
            consumer_on(hub).call_soon_ack(lost)

        assert [record.getMessage() for record in caplog.records] == ["Acknowledging a task message failed"]
        assert not hub._ready
    finally:
        hub.close()
