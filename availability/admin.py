from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.settings import api_settings

from availability.models import AvailabilityProfile, Connection, Declaration, UserAvailability
from availability.services.declarations import declaration_lift, declaration_set
from availability.services.profiles import profile_create, profile_delete, profile_update
from sapien.core.models import User


@admin.register(UserAvailability)
class UserAvailabilityAdmin(admin.ModelAdmin[UserAvailability]):
    list_display = ["user", "status", "online", "idle", "custom_message", "trigger", "changed_at", "organization"]
    list_filter = ["status", "online", "organization"]
    search_fields = ["user__email"]
    readonly_fields = [field.name for field in UserAvailability._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


def organization_member(user: User) -> User:
    """The user, when they belong to an organization: only members have availability (``state.organization_of``)."""
    if user.organization_id is None:
        raise forms.ValidationError("This user belongs to no organization, so has no availability.")
    return user


class DeclarationForm(forms.ModelForm[Declaration]):
    def clean_user(self) -> User:
        return organization_member(self.cleaned_data["user"])

    def clean_expires_at(self) -> datetime | None:
        expires_at: datetime | None = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("Must be in the future.")
        return expires_at


@admin.register(Declaration)
class DeclarationAdmin(admin.ModelAdmin[Declaration]):
    """Declarations changed here take effect at once, through the same services as the API.

    Every write goes through ``declaration_set`` / ``declaration_lift`` (``services/declarations.py``),
    which take the user's row lock before they touch the declaration: the admin keeps the lock order
    of every other path. A declaration is its (user, kind): both are fixed once it exists.
    """

    form = DeclarationForm
    list_display = ["user", "kind", "status", "custom_message", "expires_at", "created_at"]
    list_filter = ["kind", "status", "organization"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]
    exclude = ["organization", "actor_id"]  # both follow from the user and the operator

    def get_readonly_fields(self, request: HttpRequest, obj: Declaration | None = None) -> list[str]:
        return ["user", "kind"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Declaration, form: Any, change: bool) -> None:
        _, saved = declaration_set(
            user=obj.user, kind=obj.kind, status=obj.status, actor_id=str(request.user.pk), source="admin",
            custom_message=obj.custom_message, expires_at=obj.expires_at,
        )  # fmt: skip
        # The admin goes on with ``obj`` (its change message, its links): make it the row just written.
        obj.pk, obj.organization_id, obj.actor_id, obj.created_at = (
            saved.pk, saved.organization_id, saved.actor_id, saved.created_at
        )  # fmt: skip

    def delete_model(self, request: HttpRequest, obj: Declaration) -> None:
        declaration_lift(user=obj.user, kind=obj.kind, actor_id=str(request.user.pk), source="admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Declaration]) -> None:
        """The bulk "delete selected" action: one lift per declaration, users in key order (one lock order)."""
        with transaction.atomic():
            for declaration in queryset.select_related("user").order_by("user_id", "kind"):
                self.delete_model(request, declaration)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin[Connection]):
    """Read-only: connections come and go with tokens and heartbeats."""

    list_display = ["user", "kind", "connection_id", "device_type", "activity", "last_seen_at", "last_activity_at"]
    list_filter = ["kind", "device_type", "organization"]
    search_fields = ["user__email", "connection_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False


PROFILE_FIELDS = ["name", "timezone", "rules", "active"]


def _rule_errors(detail: Any, place: tuple[str, ...] = ()) -> list[str]:
    """DRF's nested errors of ``rules`` as one line each, their place in front: ``Rule 2, start_time: …``.

    Lists of errors come as ``{index: detail}``: the first index is a rule's, a deeper one an item's.
    """
    if isinstance(detail, dict):
        return [line for key, value in detail.items() for line in _rule_errors(value, (*place, *_place(key, place)))]
    return [f"{', '.join(place)}: {message}" if place else str(message) for message in detail]


def _place(key: Any, outer: tuple[str, ...]) -> tuple[str, ...]:
    if key == api_settings.NON_FIELD_ERRORS_KEY:
        return ()
    if isinstance(key, int):
        return (f"Rule {key + 1}",) if not outer else (f"item {key + 1}",)
    return (str(key),)


class AvailabilityProfileForm(forms.ModelForm[AvailabilityProfile]):
    """Validated as the API validates a profile: by ``ProfileSerializer``, whose errors land on the form's fields.

    The serializer's values (rules whole, their days sorted) are the ones saved, as through the API.
    """

    class Meta:
        model = AvailabilityProfile
        fields = ["user", *PROFILE_FIELDS]

    def clean_user(self) -> User:
        return organization_member(self.cleaned_data["user"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Only the fields the form found valid: one error per field, never a "required" one on top.
        from availability.serializers import ProfileSerializer  # here: admin modules load in every process

        serializer = ProfileSerializer(data={f: cleaned[f] for f in PROFILE_FIELDS if f in cleaned}, partial=True)
        if serializer.is_valid():
            cleaned.update(serializer.validated_data)
        else:
            for field, detail in serializer.errors.items():
                lines = _rule_errors(detail) if field == "rules" else [str(message) for message in detail]
                self.add_error(field if field in PROFILE_FIELDS else None, lines)
        return cleaned


@admin.register(AvailabilityProfile)
class AvailabilityProfileAdmin(admin.ModelAdmin[AvailabilityProfile]):
    """Profiles changed here go through ``services/profiles.py`` (``profile_create|update|delete``), as the API's do.

    So each change records its ``availability.profile.*`` event (``source: admin``, the operator as its
    cause) and re-evaluates the user's schedule at once, in the services' lock order. A profile's user
    is fixed once it exists, as in the API; its organization follows from the user.
    """

    form = AvailabilityProfileForm
    list_display = ["name", "user", "timezone", "active", "updated_at"]
    list_filter = ["active", "organization"]
    search_fields = ["name", "user__email"]
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request: HttpRequest, obj: AvailabilityProfile | None = None) -> list[str]:
        return ["user"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: AvailabilityProfile, form: Any, change: bool) -> None:
        values = {field: form.cleaned_data[field] for field in PROFILE_FIELDS}
        if change:
            profile_update(profile=obj, **values)
            return
        saved = profile_create(owner=obj.user, **values)
        # The admin goes on with ``obj`` (its change message, its links): make it the row just written.
        obj.pk, obj.organization_id, obj.created_at, obj.updated_at = (
            saved.pk, saved.organization_id, saved.created_at, saved.updated_at
        )  # fmt: skip

    def delete_model(self, request: HttpRequest, obj: AvailabilityProfile) -> None:
        profile_delete(profile=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AvailabilityProfile]) -> None:
        """The bulk "delete selected" action: one ``profile_delete`` (and event) per profile, in key order."""
        with transaction.atomic():
            for profile in queryset.order_by("user_id", "id"):
                self.delete_model(request, profile)
