"""Ordered delivery: per ordering key, one delivery in flight, in event order (docs/webhooks.md#ordered-delivery).

An ordered subscription's deliveries carry their event's ordering key (``sapien/events/ordering.py``); the
others carry none and are never held back. A delivery with a key is claimable only when it is its key's turn
(``IN_TURN``): no earlier pending delivery of the same subscription and key, none of them under a live claim,
and no event still waiting in the outbox that is older than its own (a relay that has not committed yet). So a key
advances only when its head succeeds or is finally failed; a head waiting for its retry holds the key.
Such deliveries are never born claimed by the relay (``born_claimable()``): they always go through the claim.

The order is the events' ``(created_at, id)``. Changes to one entity or user take that row's lock before their
event is stamped, so for them it is the commit order (docs/webhooks.md states the exceptions).
"""

from deliveries.models import DeliveryStatus

TABLE = "deliveries_delivery"


def delivery_ordering_key(*, subscription: str, event: str) -> str:
    """SQL for a new delivery's ordering key: its event's, for an ordered subscription only. ``subscription`` and
    ``event`` are the aliases of the subscription row and of a row with the event's ``ordering_key``."""
    return f"CASE WHEN {subscription}.ordered THEN {event}.ordering_key END"


def born_claimable(*, subscription: str, event: str) -> str:
    """SQL true when a new delivery may be born claimed: an ordered one with a key must wait for its turn."""
    return f"(NOT {subscription}.ordered OR {event}.ordering_key IS NULL)"


# True for the unaliased ``deliveries_delivery`` row being tested when it is its key's turn (or it has no key,
# or its subscription is no longer ordered: turning ``ordered`` off releases what it held). Each probe is a
# range of ``delivery_ordered_pending_idx`` (or of the outbox's primary key, which holds only the backlog).
IN_TURN = f"""(
    {TABLE}.ordering_key IS NULL
    OR NOT (SELECT ordered FROM subscriptions_subscription WHERE id = {TABLE}.subscription_id)
    OR (
        NOT EXISTS (  -- an earlier one of the key not finished yet: still due, waiting for a retry, or in flight
            SELECT 1 FROM {TABLE} earlier
            WHERE earlier.subscription_id = {TABLE}.subscription_id AND earlier.ordering_key = {TABLE}.ordering_key
              AND earlier.status = '{DeliveryStatus.PENDING}'
              AND (earlier.event_created_at, earlier.event_id) < ({TABLE}.event_created_at, {TABLE}.event_id)
        )
        AND NOT EXISTS (  -- a later one in flight (this one was redelivered or replayed behind it)
            SELECT 1 FROM {TABLE} sending
            WHERE sending.subscription_id = {TABLE}.subscription_id AND sending.ordering_key = {TABLE}.ordering_key
              AND sending.status = '{DeliveryStatus.PENDING}' AND sending.claimed_until >= now()
              AND sending.id <> {TABLE}.id
        )
        -- Older than every event not fanned out yet (one probe of the outbox's primary key per statement): an
        -- earlier event of the key may still be in a relay's uncommitted batch. The relay takes the oldest first,
        -- so this holds a key back only while an older event waits for the next relay pass.
        AND {TABLE}.event_created_at < coalesce((SELECT min(created_at) FROM events_outbox), 'infinity')
    )
)"""
