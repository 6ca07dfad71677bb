"""Moving recorded events in time, as if they had happened then: the event and its outbox entry together."""

from datetime import datetime
from typing import Any

from sapien.events.models import Event, OutboxEntry


def events_backdate(moment: datetime, **which: Any) -> None:
    """Sets the time of the events ``which`` selects (``Event.objects.filter(**which)``), and of their outbox
    entries while they wait, to ``moment``: the relay copies the entry's time into each delivery."""
    ids = list(Event.objects.filter(**which).values_list("id", flat=True))
    Event.objects.filter(id__in=ids).update(created_at=moment)
    OutboxEntry.objects.filter(event_id__in=ids).update(created_at=moment)
