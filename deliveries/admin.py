from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from deliveries.models import Blob, Delivery, DeliveryAttempt
from deliveries.services import delivery_redeliver


class AttemptInline(admin.TabularInline[DeliveryAttempt, Delivery]):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "status_code", "succeeded", "error", "response_excerpt")
    readonly_fields = ("number", "started_at", "duration_ms", "status_code", "succeeded", "error", "response_excerpt")

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    list_display = ["id", "event_type", "subscription", "status", "attempt_count", "last_status_code", "created_at"]
    list_filter = ["status", "organization"]
    search_fields = ["id", "event__id", "subscription__callback_url"]
    list_select_related = ["event", "subscription"]
    inlines = [AttemptInline]
    actions = ["redeliver"]
    readonly_fields = [
        "organization", "event", "subscription", "status", "attempt_count", "next_attempt_at", "last_status_code",
        "last_error", "created_at", "updated_at", "completed_at",
    ]  # fmt: skip
    exclude = ["claim_token", "claimed_until"]

    @admin.display(description="event type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.action(description="Redeliver the selected deliveries now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = 0
        for delivery in queryset:
            delivery_redeliver(delivery=delivery)
            count += 1
        self.message_user(request, f"{count} deliveries will be sent again.", messages.SUCCESS)


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin[Blob]):
    list_display = ["id", "event", "part", "size_bytes", "checksum", "expires_at"]
    readonly_fields = [field.name for field in Blob._meta.fields]
