"""The send path's tracing, when on (``sapien.core.tracing``): each HTTP attempt is urllib3's client span.

An attempt continues its event's trace, from the span that recorded the event (the ``traceparent`` its request
carries): the change's request, every attempt, and the receiver's spans are one trace, since urllib3's
instrumentation sends the receiver the attempt's span as its parent. The attempt links to the claim that took it,
in the worker's trace (relay, task, claim), and the claim links back to the events it took.
"""

from typing import Any

from deliveries.transport import DeliveryRequest, DeliveryResult, post
from sapien.core import tracing


def post_traced(request: DeliveryRequest, *, claim: Any) -> DeliveryResult:
    """``post()``, its span in its event's trace and linked to its ``claim``'s span. On a sending thread, which has
    no current span of its own."""
    headers = request.headers
    attributes = {
        "sapien.delivery.id": headers.get("X-Sapien-Delivery", ""),
        "sapien.delivery.attempt": int(headers.get("X-Sapien-Attempt", "0")),
        "sapien.event.id": headers.get("webhook-id", ""),
        "sapien.event.type": headers.get("X-Sapien-Event", ""),
    }
    links = [claim.get_span_context()] if claim is not None else []
    with tracing.client_call(parent=headers.get("traceparent"), attributes=attributes, links=links):
        return post(request)
