"""Reading about subscriptions without changing them."""

from typing import Any

from rest_framework.exceptions import NotFound

from sapien.events.selectors import events_of
from subscriptions.models import Subscription
from subscriptions.payload_filter import filter_matches


def subscription_filter_test(
    *, subscription: Subscription, payload_filter: Any, event: dict[str, Any] | None = None, event_id: Any = None
) -> dict[str, Any]:
    """Whether an event passes a payload filter (the subscription's own, unless ``payload_filter`` is given:
    ``...`` means not given), decided by PostgreSQL as the relay decides it.

    The event is ``event`` itself, or the retained event ``event_id`` of the subscription's organization (one of
    another organization, or past retention, is a 404). Only the filter is tested, not the event types.
    """
    tested = subscription.filter if payload_filter is ... else payload_filter
    sample: dict[str, Any] | str
    if event is not None:
        sample = event
    else:
        body = events_of(subscription.organization_id).filter(id=event_id).values_list("body", flat=True).first()
        if body is None:
            raise NotFound("No such event in this organization's retained history.")
        sample = body
    return {"matches": filter_matches(payload_filter=tested, event=sample), "filter": tested}
