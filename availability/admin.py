from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from availability import services
from availability.models import AvailabilityProfile, Connection, Declaration, UserAvailability


@admin.register(UserAvailability)
class UserAvailabilityAdmin(admin.ModelAdmin[UserAvailability]):
    list_display = ["user", "status", "online", "idle", "custom_message", "trigger", "changed_at", "organization"]
    list_filter = ["status", "online", "organization"]
    search_fields = ["user__email"]
    readonly_fields = [field.name for field in UserAvailability._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Declaration)
class DeclarationAdmin(admin.ModelAdmin[Declaration]):
    """Declarations changed here take effect at once: the user's status is recomputed."""

    list_display = ["user", "kind", "status", "custom_message", "expires_at", "created_at"]
    list_filter = ["kind", "status", "organization"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]
    exclude = ["organization", "actor_id"]  # both follow from the user and the operator

    def save_model(self, request: HttpRequest, obj: Declaration, form: Any, change: bool) -> None:
        with transaction.atomic():
            obj.organization_id = services.organization_of(obj.user)
            obj.actor_id = obj.actor_id or str(request.user.pk)
            super().save_model(request, obj, form, change)
            self._recompute(obj, request)

    def delete_model(self, request: HttpRequest, obj: Declaration) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            self._recompute(obj, request)

    def _recompute(self, declaration: Declaration, request: HttpRequest) -> None:
        state = services.locked_state(declaration.user)
        services.recompute(state, trigger=declaration.kind, source="admin", actor_id=str(request.user.pk))


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


@admin.register(AvailabilityProfile)
class AvailabilityProfileAdmin(admin.ModelAdmin[AvailabilityProfile]):
    list_display = ["name", "user", "timezone", "active", "updated_at"]
    list_filter = ["active", "organization"]
    search_fields = ["name", "user__email"]
