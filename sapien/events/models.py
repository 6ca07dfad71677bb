"""The event log, which is also the transactional outbox.

A row is inserted in the same transaction as the change that caused it, so an
event exists if and only if its change committed. ``relayed_at IS NULL`` marks
the outbox: rows the relay has not fanned out to subscriptions yet.
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
    relayed_at = models.DateTimeField(null=True, blank=True)
    # Set for an event addressed to one subscription only (``system.ping``, replays).
    recipient_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="event_outbox_idx", condition=models.Q(relayed_at__isnull=True)),
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
