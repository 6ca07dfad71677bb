"""User availability in two layers (docs/availability.md, "Two layers").

Connections say whether a user is there: OAuth sessions and presence
connections. Declarations say what the user or the organization wants shown:
a system override, a manual status, schedule profiles. ``UserAvailability``
holds the status computed from both, recomputed whenever either layer changes,
and what subscribers were last told (for the 5-second event spacing).
"""

import uuid

from django.conf import settings
from django.db import models

from sapien.core.models import Organization


class Status(models.TextChoices):
    AVAILABLE = "available", "Available"
    AWAY = "away", "Away"
    BUSY = "busy", "Busy"
    DO_NOT_DISTURB = "do_not_disturb", "Do not disturb"
    OFFLINE = "offline", "Offline"


class Trigger(models.TextChoices):
    """What caused a change, highest priority first (seed 000)."""

    SYSTEM_OVERRIDE = "system_override", "System override"
    MANUAL = "manual", "Manual"
    SESSION_START = "session_start", "Session start"
    SESSION_END = "session_end", "Session end"
    SCHEDULE = "schedule", "Schedule"
    IDLE_TIMEOUT = "idle_timeout", "Idle timeout"
    ACTIVITY_RESUME = "activity_resume", "Activity resume"


class DeclarationKind(models.TextChoices):
    SYSTEM_OVERRIDE = "system_override", "System override"
    MANUAL = "manual", "Manual"


# The trigger that names a change to each kind of declaration: its start, its lift and its expiry.
DECLARATION_TRIGGER: dict[str, str] = {
    DeclarationKind.SYSTEM_OVERRIDE: Trigger.SYSTEM_OVERRIDE,
    DeclarationKind.MANUAL: Trigger.MANUAL,
}


class Declaration(models.Model):
    """A status someone wants shown until it is lifted or expires. One of each kind per user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="declarations")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=DeclarationKind.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    custom_message = models.CharField(max_length=256, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    actor_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="declaration_one_per_kind")]
        indexes = [
            models.Index(
                fields=["expires_at"], name="declaration_expiry_idx", condition=models.Q(expires_at__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.status}"


class ConnectionKind(models.TextChoices):
    SESSION = "session", "OAuth session"
    PRESENCE = "presence", "Presence connection"


class DeviceType(models.TextChoices):
    WEB = "web", "Web"
    MOBILE = "mobile", "Mobile"
    DESKTOP = "desktop", "Desktop"
    API = "api", "API"


class Activity(models.TextChoices):
    ACTIVE = "active", "Active"
    IDLE = "idle", "Idle"
    TYPING = "typing", "Typing"


class Connection(models.Model):
    """One live connection of a user: an OAuth session (a token) or a presence connection (heartbeats)."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=ConnectionKind.choices)
    connection_id = models.CharField(max_length=128)
    session_id = models.UUIDField(default=uuid.uuid4)
    device_type = models.CharField(max_length=16, choices=DeviceType.choices, default=DeviceType.API)
    activity = models.CharField(max_length=16, choices=Activity.choices, default=Activity.ACTIVE)
    location = models.CharField(max_length=200, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True, default="")
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # Sessions end with their token; presence connections when they fall silent.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "connection_id"], name="connection_unique_per_user")]
        indexes = [
            models.Index(fields=["last_seen_at"], name="connection_last_seen_idx", condition=models.Q(kind="presence")),
            models.Index(fields=["expires_at"], name="connection_expiry_idx", condition=models.Q(kind="session")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.connection_id}"


class UserAvailability(models.Model):
    """The status shown for a user, as last computed, and what subscribers were last told."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="availability"
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    previous_status = models.CharField(max_length=16, choices=Status.choices, blank=True, default="")
    custom_message = models.CharField(max_length=256, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, blank=True, default="")
    trigger_source = models.CharField(max_length=64, blank=True, default="")
    actor_id = models.CharField(max_length=64, blank=True, default="")
    profile_id = models.UUIDField(null=True, blank=True)
    # Connectivity: online stays true through the offline debounce.
    online = models.BooleanField(default=False)
    offline_pending_since = models.DateTimeField(null=True, blank=True)
    offline_reason = models.CharField(max_length=16, blank=True, default="")
    idle = models.BooleanField(default=False)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # The schedule window in force at the last evaluation ("" when none).
    schedule_status = models.CharField(max_length=16, blank=True, default="")
    # Event spacing: what was last emitted, and when the next (consolidated) event is due.
    emitted_status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    emitted_message = models.CharField(max_length=256, blank=True, default="")
    emitted_expires_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    event_due_at = models.DateTimeField(null=True, blank=True)
    event_context = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "user availabilities"
        indexes = [
            models.Index(
                fields=["event_due_at"],
                name="availability_event_due_idx",
                condition=models.Q(event_due_at__isnull=False),
            ),
            models.Index(
                fields=["offline_pending_since"],
                name="availability_offline_due_idx",
                condition=models.Q(offline_pending_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.status}"


class AvailabilityProfile(models.Model):
    """A schedule: weekly windows in an IANA time zone, each applying a status."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="availability_profiles")
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64)
    # [{"days_of_week": [1, 2], "start_time": "09:00", "end_time": "17:00", "status": "busy"}]
    rules = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]  # oldest first where schedules are evaluated; the API lists newest first
        # The list's order for a client token (the organization's) and for a user token or ``user_id`` (one user's).
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="profile_org_created_idx"),
            models.Index(fields=["user", "-created_at", "-id"], name="profile_user_created_idx"),
        ]

    def __str__(self) -> str:
        return self.name
