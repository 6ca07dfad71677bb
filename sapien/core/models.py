"""Organizations, their users and their OAuth clients."""

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from oauth2_provider.models import AbstractApplication


class Tier(models.TextChoices):
    FREE = "free", "Free"
    STANDARD = "standard", "Standard"
    ENTERPRISE = "enterprise", "Enterprise"


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.tier})"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in. Belongs to one organization; staff operators may belong to none."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="users", null=True, blank=True
    )
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(auto_now_add=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class Application(AbstractApplication):
    """An OAuth client. Its tokens act for its organization, within its allowed scopes."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="applications")
    scopes = models.TextField(help_text="Space-separated scopes this client may request.")

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class TokenFailureCount(models.Model):
    """Failed token requests of one client id, username or address in one throttling window.

    Where the counts live when the cache is not Redis; ``sapien.core.oauth_throttle`` alone
    writes it, with an atomic upsert, and deletes the rows of windows that have ended.
    """

    key = models.CharField(max_length=128, primary_key=True)
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class IdempotencyRecord(models.Model):
    """The answer to the first ``POST`` or ``PATCH`` an organization sent with one ``Idempotency-Key``.

    Written in the request's own transaction (``sapien.core.idempotency``), so it commits with the write it
    answers or not at all; its unique key is what makes a concurrent retry wait for the first request. An
    answer can hold what a create shows once (a subscription's secret), so it is kept only
    ``ESL_IDEMPOTENCY_HOURS`` and shown nowhere but in the replay.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    # sha256 of the method, path, caller and body: a retry must repeat all four to be answered.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)  # null while the first request runs
    content_type = models.CharField(max_length=255, blank=True)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="core_idempotency_org_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
