"""Who wants which events, where, and with which secret."""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from sapien.core.models import Organization

# The largest limits a subscription may set (deliveries/limits.py): beyond them, a limit protects nothing.
MAX_RATE_LIMIT_PER_SECOND = 10_000
MAX_IN_FLIGHT = 1_000


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
            # The probe pass's scan: only disabled subscriptions that asked to be probed enter it.
            models.Index(
                fields=["probe_next_at"],
                name="subscription_probe_due_idx",
                condition=models.Q(active=False, probe_when_disabled=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.callback_url} ({', '.join(self.events)})"


class SendState(models.Model):
    """A subscription's live claims and recent sends, which its limits are counted against (deliveries/limits.py).

    Apart from the subscription row, so that claims lock this small row, never the one the API and health
    update. Claims, the relay and records change it only in their own statements, in subscription order.
    A claim counts until it is recorded or its lease lapses: a worker that dies leaks nothing.
    """

    subscription = models.OneToOneField(Subscription, on_delete=models.CASCADE, primary_key=True, related_name="+")
    # Live claims: token, lease end and deliveries not recorded yet, one entry per claim (parallel arrays).
    flight_tokens = ArrayField(models.UUIDField(), default=list)
    flight_until = ArrayField(models.DateTimeField(), default=list)
    flight_counts = ArrayField(models.IntegerField(), default=list)
    # Under a rate limit, deliveries finished in the last second, by record: when, and how many. A delivery
    # counts against the rate from its claim until a second after its record, so that whatever the queueing and
    # latency between them, no more than the rate reach the receiver within any one second.
    sent_at = ArrayField(models.DateTimeField(), default=list)
    sent_counts = ArrayField(models.IntegerField(), default=list)
    # How many the last claim took: the claim statement reads it back.
    taken = models.IntegerField(default=0)
    # The subscription's Retry-After throttle, here too: a claim reads it from the row it locks, never stale.
    throttled_until = models.DateTimeField(null=True, blank=True)
    # Under a rate limit, the end of the slots given to deliveries put back: the next ones are spaced after it.
    put_back_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"send state of {self.subscription_id}"
