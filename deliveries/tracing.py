"""The send path's tracing, when on (``sapien.core.tracing``): each HTTP attempt is a client span of its own.

An attempt continues its event's trace, from the span that recorded the event (the ``traceparent`` its request
carries): the change's request, every attempt, and the receiver's spans are one trace, since the attempt sends the
receiver its own span as the ``traceparent``. The attempt links to the claim that took it, in the worker's trace
(relay, task, claim), and the claim links back to the events it took.
"""

from dataclasses import replace
from typing import Any

from deliveries.transport import DeliveryRequest, DeliveryResult, post
from sapien.core import tracing


def post_traced(request: DeliveryRequest, *, claim: Any) -> DeliveryResult:
    """``post()``, its span in its event's trace and linked to its ``claim``'s span. On a sending thread, which has
    no current span of its own."""
    headers = request.headers
    attributes = {
        "http.method": "POST",
        "http.url": tracing.without_query(request.url),  # a callback URL's query may hold the receiver's credentials
        "sapien.delivery.id": headers.get("X-Sapien-Delivery", ""),
        "sapien.delivery.attempt": int(headers.get("X-Sapien-Attempt", "0")),
        "sapien.event.id": headers.get("webhook-id", ""),
        "sapien.event.type": headers.get("X-Sapien-Event", ""),
    }
    links = [claim.get_span_context()] if claim is not None else []
    with tracing.span("POST", attributes, parent=headers.get("traceparent"), links=links, kind="client") as span:
        attempt = tracing.current_traceparent()  # this span's: the receiver's spans are its children
        result = post(replace(request, headers={**headers, "traceparent": attempt}) if attempt else request)
        tracing.set_http_outcome(span, status_code=result.status_code, error=result.error)
        return result
