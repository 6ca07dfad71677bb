"""End to end: the receiver's trace joins the request's, through real processes.

Tracing off, a webhook carries the ``traceparent`` the API request came with, as it came. Tracing on (an OTLP
endpoint on loopback), every process exports its spans, and the request, the outbox write, the relay, the claim
and the HTTP attempt are one trace or linked to it; the receiver is sent a ``traceparent`` of that trace.
"""

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.support import processes
from tests.support.otlp import Collector, ExportedSpan
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
SERVER, CLIENT = 2, 3  # OTLP's span kinds


def subscribe(api, url: str) -> None:
    response = api.post("/api/v1/subscriptions", {"callback_url": url, "events": ["person.*"]}, format="json")
    assert response.status_code == 201, response.content


def test_the_receiver_gets_the_request_s_traceparent_as_it_came(
    platform, receiver: Receiver, make_organization, make_api
) -> None:
    api = make_api(make_organization())
    subscribe(api, receiver.url)

    created = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_TRACEPARENT=TRACEPARENT)

    assert created.status_code == 201
    (request,) = receiver.wait_for(1)
    assert request.header("traceparent") == TRACEPARENT
    assert json.loads(request.body)["data"]["id"] == created.json()["id"]


def test_a_malformed_traceparent_reaches_no_receiver(platform, receiver: Receiver, make_organization, make_api) -> None:
    api = make_api(make_organization())
    subscribe(api, receiver.url)

    created = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_TRACEPARENT="00-not-a-trace-01")

    assert created.status_code == 201
    (request,) = receiver.wait_for(1)
    assert "traceparent" not in request.headers


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    yield collector
    collector.close()


def only(spans: list[ExportedSpan], name: str, service: str) -> ExportedSpan:
    matching = [span for span in spans if span.name == name and span.service == service]
    assert len(matching) == 1, [(span.name, span.service) for span in spans]
    return matching[0]


def test_with_tracing_on_the_request_outbox_relay_claim_and_attempt_spans_join_or_link(
    platform_factory, receiver: Receiver, collector: Collector, make_organization, make_token, make_api
) -> None:
    # given the web, relay and worker processes exporting to a loopback collector (no beat: the relay relays)
    platform = platform_factory(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.endpoint, OTEL_BSP_SCHEDULE_DELAY=100)
    port = processes.free_port()
    platform.start(processes.web(platform.env, platform.log_dir, port))
    platform.relay()
    platform.worker()
    organization = make_organization()
    subscribe(make_api(organization), receiver.url + "?key=the-receiver-s-credential")
    token = make_token(organization).token
    processes.wait_until(lambda: listening(port), timeout=60, message="gunicorn listening")

    # when a request that carries a traceparent creates a Person
    status, body = post(port, "/api/persons", {"name": "Ada"}, token=token, traceparent=TRACEPARENT)

    # then the receiver's traceparent continues the caller's trace
    assert status == 201, body
    (request,) = receiver.wait_for(1, timeout=60)
    version, trace_id, sent_parent, flags = request.header("traceparent").split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")

    def exported() -> bool:
        names = {span.name for span in collector.spans()}
        return {"sapien.outbox.relay", "sapien.delivery.claim", "POST"} <= names

    processes.wait_until(exported, timeout=30, message="the workers' spans exported")
    spans = collector.spans()
    served = [s for s in spans if s.service == "sapien-web" and s.kind == SERVER and s.trace_id == TRACE_ID]
    (served_request,) = served
    recorded = only(spans, "sapien.outbox.record", "sapien-web")
    claim = only(spans, "sapien.delivery.claim", "sapien-worker")
    (attempt,) = [s for s in spans if s.kind == CLIENT and "sapien.delivery.id" in s.attributes]
    relayed = [s for s in spans if s.name == "sapien.outbox.relay" and s.attributes.get("sapien.relay.events") == 1]
    (relay,) = relayed

    # the request continues the caller's span, and the outbox write is its child
    assert served_request.parent_span_id == CALLER_SPAN_ID
    assert (recorded.trace_id, recorded.parent_span_id) == (TRACE_ID, served_request.span_id)
    assert recorded.attributes["sapien.event.type"] == "person.created"
    # the relay hands the batch over in its own trace, which the worker's task and its claim continue
    assert relay.service == "sapien-relay"
    assert claim.trace_id == relay.trace_id != TRACE_ID
    assert claim.links_to(recorded)  # and the claim links to the write of the event it took
    # the attempt (its own client span) continues the event's trace from its write, and links to the claim
    assert (attempt.name, attempt.service) == ("POST", "sapien-worker")
    assert (attempt.trace_id, attempt.parent_span_id) == (TRACE_ID, recorded.span_id)
    assert attempt.links_to(claim)
    assert attempt.attributes["sapien.delivery.id"] == request.header("X-Sapien-Delivery")
    assert attempt.attributes["sapien.delivery.attempt"] == 1
    assert attempt.attributes["http.status_code"] == 200
    assert attempt.attributes["http.url"] == receiver.url  # without the query, which may hold a credential
    assert not any("the-receiver-s-credential" in str(value) for span in spans for value in span.attributes.values())
    # and it is the receiver's parent
    assert sent_parent == attempt.span_id


def listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def post(port: int, path: str, payload: dict, *, token: str, traceparent: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST", path, body=json.dumps(payload),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                     "traceparent": traceparent},
        )  # fmt: skip
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
