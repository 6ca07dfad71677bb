"""Who wants which events, where, and with which secret."""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from sapien.core.models import Organization


class Subscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="subscriptions")
    callback_url = models.URLField(max_length=2048)
    # Exact types, families (``person.*``) or ``*``; matched by the relay in SQL.
    events = ArrayField(models.CharField(max_length=64))
    # The HMAC key: needed in clear to sign, so it is write-only in the API and masked in the admin.
    secret = models.CharField(max_length=256)
    # During a rotation the previous secret still signs, until it expires.
    previous_secret = models.CharField(max_length=256, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True, default="")
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Deliveries that ended failed in a row, and since when: the automatic disabling counts them.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)

    # Receiver control (docs/webhooks.md). At most this many deliveries started per second, and at most this
    # many in flight at once (null: ESL_DEFAULT_MAX_IN_FLIGHT); both enforced in the claim, on every worker.
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True)
    max_in_flight = models.PositiveIntegerField(null=True, blank=True)
    # A 429 or 503 with Retry-After holds the whole subscription back until then, not one delivery.
    throttled_until = models.DateTimeField(null=True, blank=True)
    # Extra request headers, sent with every attempt: values are secrets, write-only in the API, masked in the admin.
    headers = models.JSONField(default=dict, blank=True)
    # A JSON document the event must contain (PostgreSQL ``@>``), evaluated by the relay's fan-out; null: no filter.
    filter = models.JSONField(null=True, blank=True)
    # Per ordering key (the user, the entity), at most one delivery in flight, in commit order.
    ordered = models.BooleanField(default=False)

    # Health (docs/webhooks.md): the failing notice is sent once per episode, and the recovered one ends it.
    failing_notified_at = models.DateTimeField(null=True, blank=True)
    # While disabled, an opt-in signed system.ping at a backing-off interval tells the owner the receiver is back.
    probe_when_disabled = models.BooleanField(default=False)
    probe_next_at = models.DateTimeField(null=True, blank=True)
    probes_sent = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "active"], name="subscription_org_active_idx"),
            # The list's order: a page is one range of it (sapien.core.pagination).
            models.Index(fields=["organization", "-created_at", "-id"], name="subscription_org_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.callback_url} ({', '.join(self.events)})"
