"""The one ``INSERT`` that raw SQL makes new deliveries with: the relay's fan-out and a replay share it.

Its columns are the model's (``tests/deliveries/test_new_deliveries.py`` holds them to
``Delivery``'s), each beside its value, so the list and the values cannot drift apart.
"""

from deliveries.models import Delivery, DeliveryStatus


def new_deliveries_sql(*, event: str, subscription_id: str, due_at: str) -> str:
    """``INSERT INTO deliveries_delivery (…) SELECT …``: a pending delivery, due at ``due_at``, per row of the
    ``FROM`` the caller appends, in which ``event`` is the alias of a row with the event's ``id``,
    ``organization_id``, ``type`` and ``created_at``. The other arguments are SQL expressions over that ``FROM``."""
    values = new_delivery_values(event=event, subscription_id=subscription_id, due_at=due_at)
    return f"INSERT INTO {Delivery._meta.db_table} ({', '.join(values)})\nSELECT {', '.join(values.values())}\n"


def new_delivery_values(*, event: str, subscription_id: str, due_at: str) -> dict[str, str]:
    """Column → SQL expression of a new delivery: pending, no attempt yet, due at ``due_at``, in its event's
    partition (``event_created_at``)."""
    return {
        "id": "gen_random_uuid()",
        "organization_id": f"{event}.organization_id",
        "event_id": f"{event}.id",
        "event_created_at": f"{event}.created_at",
        "event_type": f"{event}.type",
        "subscription_id": subscription_id,
        "status": f"'{DeliveryStatus.PENDING}'",
        "attempt_count": "0",
        "next_attempt_at": due_at,
        "last_error": "''",
        "created_at": "now()",
        "updated_at": "now()",
    }
