from django.contrib import admin

from availability.models import AvailabilityProfile, Connection, Declaration, UserAvailability


@admin.register(UserAvailability)
class UserAvailabilityAdmin(admin.ModelAdmin[UserAvailability]):
    list_display = ["user", "status", "online", "idle", "custom_message", "trigger", "changed_at", "organization"]
    list_filter = ["status", "online", "organization"]
    search_fields = ["user__email"]
    readonly_fields = [field.name for field in UserAvailability._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Declaration)
class DeclarationAdmin(admin.ModelAdmin[Declaration]):
    list_display = ["user", "kind", "status", "custom_message", "expires_at", "created_at"]
    list_filter = ["kind", "status", "organization"]
    search_fields = ["user__email"]


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin[Connection]):
    list_display = ["user", "kind", "connection_id", "device_type", "activity", "last_seen_at", "last_activity_at"]
    list_filter = ["kind", "device_type", "organization"]
    search_fields = ["user__email", "connection_id"]


@admin.register(AvailabilityProfile)
class AvailabilityProfileAdmin(admin.ModelAdmin[AvailabilityProfile]):
    list_display = ["name", "user", "timezone", "active", "updated_at"]
    list_filter = ["active", "organization"]
    search_fields = ["name", "user__email"]
