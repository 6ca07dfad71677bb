"""Deliveries (one per event and subscription), their attempts, and spilled blobs.

The database is the scheduler: a pending delivery whose ``next_attempt_at`` has
passed and whose claim has lapsed is due. A worker claims it by writing a fresh
``claim_token`` and a ``claimed_until`` lease; its outcome is recorded only while
that token still holds, so a worker that was presumed dead cannot overwrite a
newer claim.

Deliveries and attempts are partitioned by day on their event's time
(``event_created_at``), as events are on theirs, so that a day of history is
dropped whole (``deliveries/partitions.py``): each table's primary key and unique
constraint include it, and the links between the three tables are kept by the
code, not by foreign keys (a foreign key to a partitioned table must name its
partition key).
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
    # The table's primary key is (id, event_created_at); id alone is unique all the same (a UUID).
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed: only an organization's deletion looks deliveries up by it.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Both indexed by the unique constraint and delivery_sub_log_idx, which lead with them.
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False, db_constraint=False
    )
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    # The event's time and type, copied at fan-out: the partition key, and the log's order and filters.
    event_created_at = models.DateTimeField()
    event_type = models.CharField(max_length=64)
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
    # The event's ordering key, set only for an ordered subscription's deliveries (null otherwise).
    ordering_key = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ["-event_created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscription", "event_created_at"], name="delivery_one_per_event_subscription"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="delivery_due_idx", condition=models.Q(status=DeliveryStatus.PENDING)
            ),
            models.Index(fields=["subscription", "-event_created_at", "-id"], name="delivery_sub_log_idx"),
            models.Index(fields=["subscription", "status", "-event_created_at", "-id"], name="delivery_sub_status_idx"),
            models.Index(
                fields=["subscription", "event_type", "-event_created_at", "-id"], name="delivery_sub_type_idx"
            ),
            # The operators' list of every delivery, newest first (the admin), in page-size time.
            models.Index(fields=["-event_created_at", "-id"], name="delivery_event_created_idx"),
            # An ordered subscription's unfinished deliveries per key, oldest first: only they enter it.
            models.Index(
                fields=["subscription", "ordering_key", "event_created_at", "id"],
                name="delivery_ordered_pending_idx",
                condition=models.Q(status=DeliveryStatus.PENDING, ordering_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.subscription_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP try, append-only. Holds an excerpt of the response, never a secret."""

    # The table's primary key is (id, event_created_at).
    delivery = models.ForeignKey(  # indexed by attempt_delivery_idx, which leads with it
        Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False, db_constraint=False
    )
    event_created_at = models.DateTimeField()  # the delivery's event's: the partition key
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    succeeded = models.BooleanField()
    error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number", "id"]
        indexes = [
            models.Index(fields=["delivery", "number"], name="attempt_delivery_idx"),
            # The operators' list of every attempt, newest first (the admin), in page-size time.
            models.Index(fields=["-started_at", "-id"], name="attempt_started_idx"),
        ]

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
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="blobs", db_index=False, db_constraint=False
    )
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


# The organization of the counter rows counted for every organization at once (ESL_METRICS_PER_ORGANIZATION off).
ALL_ORGANIZATIONS = uuid.UUID(int=0)


class OutcomeCounter(models.Model):
    """What workers recorded, added up since the table was created: ``/metrics``' attempt and delivery counters.

    Written only by the statement that records the outcomes (``deliveries/claims.py``), in the same transaction,
    and never by the purge: the totals only go up. A statement adds its counts to one of ``COUNTER_SHARDS`` rows
    (``deliveries/counters.py``), so that concurrent workers rarely wait for one another's row; a scrape sums them.
    """

    pk = models.CompositePrimaryKey("organization_id", "shard")
    # Not a foreign key: the counts outlive the organization. ALL_ORGANIZATIONS unless counted per organization.
    organization_id = models.UUIDField()
    shard = models.PositiveSmallIntegerField()
    # Attempts by the class of the receiver's answer; "error" is no answer (a timeout, a connection error).
    attempts_2xx = models.BigIntegerField(default=0)
    attempts_3xx = models.BigIntegerField(default=0)
    attempts_4xx = models.BigIntegerField(default=0)
    attempts_5xx = models.BigIntegerField(default=0)
    attempts_other = models.BigIntegerField(default=0)
    attempts_error = models.BigIntegerField(default=0)
    # The attempt duration histogram: attempts that took at most this long (cumulative, as Prometheus' buckets).
    duration_le_5ms = models.BigIntegerField(default=0)
    duration_le_10ms = models.BigIntegerField(default=0)
    duration_le_25ms = models.BigIntegerField(default=0)
    duration_le_50ms = models.BigIntegerField(default=0)
    duration_le_100ms = models.BigIntegerField(default=0)
    duration_le_250ms = models.BigIntegerField(default=0)
    duration_le_500ms = models.BigIntegerField(default=0)
    duration_le_1000ms = models.BigIntegerField(default=0)
    duration_le_2500ms = models.BigIntegerField(default=0)
    duration_le_5000ms = models.BigIntegerField(default=0)
    duration_le_10000ms = models.BigIntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)
    # Deliveries that reached a final status (a redelivered one can finish again).
    deliveries_succeeded = models.BigIntegerField(default=0)
    deliveries_failed = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"outcomes of {self.organization_id}, shard {self.shard}"


class RelayCounter(models.Model):
    """What the relay fanned out, added up since the table was created: ``/metrics``' relay counters.

    Written only by the relay's statement (``deliveries/relay.py``), on rows of its own: a relay and a worker
    never wait for each other's counter row. Sharded as ``OutcomeCounter`` is.
    """

    pk = models.CompositePrimaryKey("organization_id", "shard")
    organization_id = models.UUIDField()
    shard = models.PositiveSmallIntegerField()
    events_relayed = models.BigIntegerField(default=0)
    # Events past their organization's hourly quota: their deliveries wait for the next window.
    events_over_quota = models.BigIntegerField(default=0)
    deliveries_created = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"relayed for {self.organization_id}, shard {self.shard}"


class SubscriptionHealthHour(models.Model):
    """What one subscription's deliveries did in one hour: what ``GET …/subscriptions/{id}/stats`` answers from.

    Written only by the statement that records the outcomes (``deliveries/claims.py``, ``deliveries/health.py``),
    on the counter shard that statement picked, so that workers recording for the same subscription at once rarely
    wait for one another's row; read a day at a time, so an answer costs at most 25 hours of shards however long
    the history. Retention deletes the hours past ``HEALTH_HOURS_KEPT``.
    """

    pk = models.CompositePrimaryKey("subscription_id", "hour", "shard")
    # Not a foreign key: inserting under one would lock the subscription's row, which the health bookkeeping
    # locks for update; the hours of a deleted subscription go with retention.
    subscription_id = models.UUIDField()
    hour = models.DateTimeField()
    shard = models.PositiveSmallIntegerField()
    attempts = models.BigIntegerField(default=0)
    attempts_failed = models.BigIntegerField(default=0)
    # The attempt duration histogram: attempts that took at most this long (cumulative), and the longest.
    duration_le_5ms = models.BigIntegerField(default=0)
    duration_le_10ms = models.BigIntegerField(default=0)
    duration_le_25ms = models.BigIntegerField(default=0)
    duration_le_50ms = models.BigIntegerField(default=0)
    duration_le_100ms = models.BigIntegerField(default=0)
    duration_le_250ms = models.BigIntegerField(default=0)
    duration_le_500ms = models.BigIntegerField(default=0)
    duration_le_1000ms = models.BigIntegerField(default=0)
    duration_le_2500ms = models.BigIntegerField(default=0)
    duration_le_5000ms = models.BigIntegerField(default=0)
    duration_le_10000ms = models.BigIntegerField(default=0)
    duration_ms_max = models.BigIntegerField(default=0)
    # Deliveries that reached a final status.
    deliveries_succeeded = models.BigIntegerField(default=0)
    deliveries_failed = models.BigIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True)
    last_failure_at = models.DateTimeField(null=True)
    last_failure_status_code = models.PositiveIntegerField(null=True)
    last_failure_reason = models.TextField(default="")

    class Meta:
        indexes = [models.Index(fields=["hour"], name="health_hour_idx")]  # retention's delete of past hours

    def __str__(self) -> str:
        return f"health of {self.subscription_id} at {self.hour:%Y-%m-%d %H}:00, shard {self.shard}"
