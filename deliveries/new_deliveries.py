"""The one ``INSERT`` that raw SQL makes new deliveries with: the relay's fan-out and a replay share it.

Its columns are the model's (``tests/deliveries/test_new_deliveries.py`` holds them to
``Delivery``'s), each beside its value, so the list and the values cannot drift apart.
"""

from dataclasses import dataclass

from deliveries.models import Delivery, DeliveryStatus


@dataclass(frozen=True)
class BirthClaim:
    """SQL expressions over the ``FROM``: which new deliveries are born claimed (``when``), with which claim token
    (``token``, NULL for the others) until when (``until``)."""

    when: str
    token: str
    until: str


def new_deliveries_sql(
    *, event: str, subscription_id: str, due_at: str, claim: BirthClaim | None = None, ordering_key: str = "NULL"
) -> str:
    """``INSERT INTO deliveries_delivery (…) SELECT …``: a pending delivery, due at ``due_at``, per row of the
    ``FROM`` the caller appends, in which ``event`` is the alias of a row with the event's ``id``,
    ``organization_id``, ``type`` and ``created_at``. The other arguments are SQL expressions over that ``FROM``.

    With ``claim``, the deliveries it selects are born claimed for their first attempt (``deliveries/handoff.py``).
    ``ordering_key`` is the delivery's key, non-null only for an ordered subscription (``deliveries/ordering.py``).
    """
    values = new_delivery_values(
        event=event, subscription_id=subscription_id, due_at=due_at, claim=claim, ordering_key=ordering_key
    )
    return f"INSERT INTO {Delivery._meta.db_table} ({', '.join(values)})\nSELECT {', '.join(values.values())}\n"


def new_delivery_values(
    *, event: str, subscription_id: str, due_at: str, claim: BirthClaim | None = None, ordering_key: str = "NULL"
) -> dict[str, str]:
    """Column → SQL expression of a new delivery: pending, due at ``due_at``, in its event's partition
    (``event_created_at``); no attempt yet, or, where ``claim`` applies, its first attempt claimed."""
    return {
        "id": "gen_random_uuid()",
        "organization_id": f"{event}.organization_id",
        "event_id": f"{event}.id",
        "event_created_at": f"{event}.created_at",
        "event_type": f"{event}.type",
        "subscription_id": subscription_id,
        "status": f"'{DeliveryStatus.PENDING}'",
        "attempt_count": "0" if claim is None else f"CASE WHEN {claim.when} THEN 1 ELSE 0 END",
        "next_attempt_at": due_at,
        "claim_token": "NULL" if claim is None else f"CASE WHEN {claim.when} THEN {claim.token} END",
        "claimed_until": "NULL" if claim is None else f"CASE WHEN {claim.when} THEN {claim.until} END",
        "last_error": "''",
        "created_at": "now()",
        "updated_at": "now()",
        "ordering_key": ordering_key,
    }
