"""The event log and the transactional outbox beside it.

An event and its outbox entry are inserted in the same transaction as the change
that caused them, so an event exists if and only if its change committed. The
relay deletes the entry when it fans the event out: the event row, body and all,
is written once and never rewritten.
"""

import json
import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from sapien.core.models import Organization


class Event(models.Model):
    """Partitioned by day on ``created_at``; the table's primary key is (id, created_at)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by event_org_created_idx (organization first): a separate index would only slow writes.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=64)
    # The exact JSON text delivered: serialized once, at the change, and signed as is.
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # Set for an event addressed to one subscription only (``system.ping``, replays).
    recipient_id = models.UUIDField(null=True, blank=True)
    # The W3C traceparent of the request that caused the event, sent to receivers so their traces join ours.
    traceparent = models.CharField(max_length=55, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="event_org_created_idx"),
            models.Index(fields=["organization", "type", "-created_at", "-id"], name="event_org_type_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="event_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class OutboxEntry(models.Model):
    """An event the relay has not fanned out yet, with what fan-out needs of it and nothing more (no body).

    A queue, not a log: the relay deletes the entries it takes, so the table holds only the backlog and
    its primary key serves the relay's oldest-first scan.
    """

    pk = models.CompositePrimaryKey("created_at", "event_id")
    created_at = models.DateTimeField()  # the event's
    event_id = models.UUIDField()  # not a foreign key: events are partitioned, and the entry goes first
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    type = models.CharField(max_length=64)
    recipient_id = models.UUIDField(null=True, blank=True)
    # What ordered subscriptions keep in order: the user of availability and presence events, the entity of
    # entity events; null when the type has none.
    ordering_key = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        db_table = "events_outbox"
        verbose_name_plural = "outbox entries"

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} (not relayed yet)"


class QuotaUsage(models.Model):
    """Events counted against an organization's hourly quota, one row per organization and hour.

    Counted by the relay (in batches, off the API's hot path); ``system.*`` events are not counted.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="quota_usage")
    window_start = models.DateTimeField()
    events = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "window_start"], name="quota_one_row_per_hour")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.window_start:%Y-%m-%d %H:00}: {self.events}"
