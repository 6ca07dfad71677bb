"""With tracing on, each HTTP attempt is a client span of its own: its event's trace, its outcome, the receiver's parent.

The spans go to an in-memory exporter in this process; the receiver is a real one on loopback.
"""

import socket
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from deliveries import transport
from deliveries.tracing import post_traced
from deliveries.transport import DeliveryRequest
from sapien.core import tracing
from tests.support.receiver import always

EVENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
EVENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def exported(e2e_settings, monkeypatch) -> Iterator[InMemorySpanExporter]:
    e2e_settings.ESL_OTEL_ENABLED = True
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", lambda: provider.get_tracer("sapien"))
    transport._connections.reset()  # the connections are made for the current setting (loopback allowed)
    yield exporter
    transport._connections.reset()


def attempt_to(url: str) -> DeliveryRequest:
    headers = {
        "Content-Type": "application/json",
        "X-Sapien-Delivery": str(uuid.uuid4()),
        "X-Sapien-Attempt": "2",
        "X-Sapien-Event": "person.created",
        "webhook-id": "evt_1",
        "traceparent": f"00-{EVENT_TRACE_ID}-{EVENT_SPAN_ID}-01",
    }
    return DeliveryRequest(url=url, body=b"{}", headers=headers)


def test_an_attempt_continues_its_event_s_trace_and_is_the_receiver_s_parent(exported, receiver) -> None:
    request = attempt_to(receiver.url + "?key=the-receiver-s-credential")

    result = post_traced(request, claim=None)

    (span,) = exported.get_finished_spans()
    assert result.status_code == 200
    assert (span.name, span.kind) == ("POST", SpanKind.CLIENT)
    assert f"{span.context.trace_id:032x}" == EVENT_TRACE_ID
    assert f"{span.parent.span_id:016x}" == EVENT_SPAN_ID
    assert dict(span.attributes) == {
        "http.method": "POST",
        "http.url": receiver.url,  # without the query, which may hold a credential
        "http.status_code": 200,
        "sapien.delivery.id": request.headers["X-Sapien-Delivery"],
        "sapien.delivery.attempt": 2,
        "sapien.event.id": "evt_1",
        "sapien.event.type": "person.created",
    }
    assert span.status.status_code == StatusCode.UNSET
    (received,) = receiver.requests
    assert received.header("traceparent") == f"00-{EVENT_TRACE_ID}-{span.context.span_id:016x}-01"


def test_an_answer_of_400_or_more_is_an_error_span(exported, receiver) -> None:
    receiver.responder = always(503)

    post_traced(attempt_to(receiver.url), claim=None)

    (span,) = exported.get_finished_spans()
    assert span.attributes["http.status_code"] == 503
    assert span.status.status_code == StatusCode.ERROR


def test_no_answer_at_all_is_an_error_span_that_says_why(exported) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]

    result = post_traced(attempt_to(f"http://127.0.0.1:{port}/hooks"), claim=None)

    (span,) = exported.get_finished_spans()
    assert "http.status_code" not in span.attributes
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == result.error
    assert result.error.startswith("connection error:")
