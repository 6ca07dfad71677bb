"""Notices to every organization's subscribers: scheduled maintenance."""

from datetime import datetime
from typing import Any

from django.db import transaction

from sapien.core.context import overriding
from sapien.core.models import Organization
from sapien.events.envelope import isoformat_z
from sapien.events.outbox import record_event


@transaction.atomic
def maintenance_announce(
    *, starts_at: datetime, ends_at: datetime, message: str, organizations: Any = None, actor: str | None = None
) -> int:
    """Records ``system.maintenance.scheduled`` for each organization (all by default); returns how many."""
    if ends_at <= starts_at:
        raise ValueError("The maintenance must end after it starts.")
    targets = organizations if organizations is not None else Organization.objects.all()
    data = {"starts_at": isoformat_z(starts_at), "ends_at": isoformat_z(ends_at), "message": message}
    count = 0
    with overriding(triggered_by=actor, source="admin" if actor else "system"):
        for organization in targets:
            record_event(organization_id=organization.id, event_type="system.maintenance.scheduled", data=data)
            count += 1
    return count
