"""Person, Pet and Toy: the entities whose every change becomes an event.

Each carries its organization, so that one filter scopes any query. Deleting a
Person deletes their pets, and a pet's toys, each with its own ``*.deleted`` event.
"""

import uuid
from typing import Any

from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import F
from django.db.models.functions import Upper

from sapien.core.models import Organization

NOTES_MAX_CHARACTERS = 1024 * 1024


class TracksOriginalValues(models.Model):
    """Remembers the field values loaded from the database, so an update can report its ``changes``."""

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Any:  # type: ignore[override]
        instance = super().from_db(db, field_names, values)
        instance._original_values = dict(zip(field_names, values, strict=True))
        return instance

    def original_value(self, attname: str) -> Any:
        return getattr(self, "_original_values", {}).get(attname)

    def remember_current_values(self) -> None:
        self._original_values = {field.attname: getattr(self, field.attname) for field in self._meta.concrete_fields}


class PersonStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    ARCHIVED = "archived", "Archived"


class Person(TracksOriginalValues):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the list indexes below, which lead with it: a lone index of it would be one more write per create.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="persons", db_index=False)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    status = models.CharField(max_length=16, choices=PersonStatus.choices, default=PersonStatus.ACTIVE)
    notes = models.TextField(blank=True, default="", validators=[MaxLengthValidator(NOTES_MAX_CHARACTERS)])
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The list's order, alone and after each equality filter: a page is one index range
        # (sapien.core.pagination). ``email`` is compared case-insensitively, as its filter does.
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="person_org_created_idx"),
            models.Index(fields=["organization", "status", "-created_at", "-id"], name="person_org_status_idx"),
            models.Index(
                F("organization"), Upper("email"), F("created_at").desc(), F("id").desc(), name="person_org_email_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Pet(TracksOriginalValues):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="pets", db_index=False)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=50)
    owner = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="pets", null=True, blank=True, db_index=False
    )  # indexed by pet_owner_created_idx, which leads with it
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The list's order, alone and after each equality filter (``type`` case-insensitively, as filtered).
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="pet_org_created_idx"),
            models.Index(
                F("organization"), Upper("type"), F("created_at").desc(), F("id").desc(), name="pet_org_type_idx"
            ),
            models.Index(fields=["owner", "-created_at", "-id"], name="pet_owner_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class Toy(TracksOriginalValues):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="toys", db_index=False)
    name = models.CharField(max_length=200)
    pet = models.ForeignKey(
        Pet, on_delete=models.CASCADE, related_name="toys", null=True, blank=True, db_index=False
    )  # indexed by toy_pet_created_idx, which leads with it
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The list's order, alone and after the ``pet`` filter.
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="toy_org_created_idx"),
            models.Index(fields=["pet", "-created_at", "-id"], name="toy_pet_created_idx"),
        ]

    def __str__(self) -> str:
        return self.name
