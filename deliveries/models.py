"""Deliveries (one per event and subscription), their attempts, and spilled blobs.

The database is the scheduler: a pending delivery whose ``next_attempt_at`` has
passed and whose claim has lapsed is due. A worker claims it by writing a fresh
``claim_token`` and a ``claimed_until`` lease; its outcome is recorded only while
that token still holds, so a worker that was presumed dead cannot overwrite a
newer claim.
"""

import uuid

from django.db import models

from sapien.core.models import Organization
from sapien.events.models import Event
from subscriptions.models import Subscription

RESPONSE_EXCERPT_CHARS = 1024


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # Both indexed by the unique constraint and delivery_subscription_log_idx, which lead with them.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    # Attempts made in the current chain; a redelivery starts a new chain at 0.
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="delivery_one_per_event_subscription"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="delivery_due_idx", condition=models.Q(status=DeliveryStatus.PENDING)
            ),
            models.Index(fields=["subscription", "-created_at"], name="delivery_subscription_log_idx"),
            models.Index(fields=["created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.subscription_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP try, append-only. Holds an excerpt of the response, never a secret."""

    delivery = models.ForeignKey(  # indexed by attempt_delivery_idx, which leads with it
        Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    succeeded = models.BooleanField()
    error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number", "id"]
        indexes = [models.Index(fields=["delivery", "number"], name="attempt_delivery_idx")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"


class BlobPart(models.TextChoices):
    """What of an event a blob holds, and so which reference of the delivered body points to it."""

    DATA = "data", "data (data_ref)"
    CHANGES = "changes", "changes (changes_ref)"
    EVENT = "event", "the whole event (event_ref)"


class Blob(models.Model):
    """A part of an event too large to send inline, kept in Django's storage until it expires."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the unique constraint, which leads with it.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="blobs", db_index=False)
    part = models.CharField(max_length=16, choices=BlobPart.choices, default=BlobPart.DATA)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=500)
    size_bytes = models.PositiveBigIntegerField()
    checksum = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "part"], name="blob_one_per_event_part")]

    def __str__(self) -> str:
        return self.path
