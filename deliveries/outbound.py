"""What goes out for a claimed batch: refusals of what must not be sent, and a signed request for the rest.

Checked at send time, not only when the subscription was saved: a subscription may have been
deactivated, or its callback's name may have come to resolve to an internal address, since.
"""

import uuid
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from deliveries.blobs import body_to_send
from deliveries.claims import ClaimedDelivery
from deliveries.models import DeliveryStatus
from deliveries.retry import Outcome
from deliveries.signing import sapien_signature, standard_webhooks_signature
from deliveries.transport import DeliveryRequest
from sapien import __version__
from subscriptions.url_safety import UnsafeCallbackURL, check_callback_url

# What every webhook carries besides its own headers; the last three are a requests client's defaults, kept so
# that receivers see the same request whatever client sends it.
COMMON_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": f"Sapien-ESL/{__version__}",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
}


def build_request(delivery: ClaimedDelivery, body: bytes, *, now: datetime | None = None) -> DeliveryRequest:
    """The webhook as sent: ``body`` signed both ways (docs/webhooks.md, "Verifying signatures"), timestamped
    ``now`` (a batch passes its one ``now``; by default, the current time)."""
    event, subscription = delivery.event, delivery.subscription
    now = now or timezone.now()
    timestamp = int(now.timestamp())
    event_id = str(event.id)
    headers = {
        **COMMON_HEADERS,
        **subscription.headers,  # the receiver's own (never a name of ours: subscriptions/custom_headers.py)
        "X-Sapien-Signature": sapien_signature(
            secret=subscription.secret, body=body, algorithm=settings.ESL_SIGNATURE_ALGORITHM
        ),
        "X-Sapien-Event": event.type,
        "X-Sapien-Delivery": str(delivery.id),
        "X-Sapien-Attempt": str(delivery.attempt),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_signature(
            secrets=subscription.signing_secrets(now),
            message_id=event_id,
            timestamp=timestamp,
            body=body,
        ),
    }
    if event.traceparent:  # the trace of the change, for the receiver's to join (docs/webhooks.md, "Tracing")
        headers["traceparent"] = event.traceparent
    return DeliveryRequest(url=subscription.callback_url, body=body, headers=headers)


def refusal(delivery: ClaimedDelivery, reason: str) -> Outcome:
    """A delivery failed for good without a request: there is no attempt to record."""
    return Outcome(delivery=delivery, result=None, status=DeliveryStatus.FAILED, next_attempt_at=None, error=reason)


def prepare_batch(batch: list[ClaimedDelivery]) -> tuple[list[Outcome], list[tuple[ClaimedDelivery, DeliveryRequest]]]:
    """Refuses what must not be sent (inactive subscription, unsafe URL); signs the rest, one body per event."""
    now = timezone.now()
    bodies: dict[uuid.UUID, bytes] = {}
    url_verdicts: dict[str, str] = {}
    to_send: list[tuple[ClaimedDelivery, DeliveryRequest]] = []
    refusals: list[Outcome] = []
    for delivery in batch:
        if not delivery.subscription.active and not delivery.addressed:
            refusals.append(refusal(delivery, "subscription is inactive"))
            continue
        url = delivery.subscription.callback_url
        if url not in url_verdicts:
            try:
                check_callback_url(url)
                url_verdicts[url] = ""
            except UnsafeCallbackURL as exc:
                url_verdicts[url] = str(exc)
        if url_verdicts[url]:
            refusals.append(refusal(delivery, f"refused: {url_verdicts[url]}"))
            continue
        if delivery.event.id not in bodies:
            bodies[delivery.event.id] = body_to_send(delivery.event)
        to_send.append((delivery, build_request(delivery, bodies[delivery.event.id], now=now)))
    return refusals, to_send
