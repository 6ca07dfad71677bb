from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timesince import timesince

from deliveries.models import Blob, Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.services import delivery_redeliver
from sapien.core.admin import OrganizationAdmin
from sapien.core.models import Organization
from sapien.events.admin import announce_maintenance
from sapien.events.quota import quota_status
from subscriptions.models import Subscription


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


class OrganizationOperationsAdmin(OrganizationAdmin):
    """Per organization: this hour's quota use, failing subscriptions and the oldest undelivered event.

    It extends core's organization page here, in the one app that may read the quota (events), the
    subscriptions and the deliveries: core imports no app.
    """

    list_display = ["name", "tier", "quota_this_hour", "failing_subscriptions", "oldest_undelivered", "created_at"]
    actions = [announce_maintenance]

    @admin.display(description="events this hour")
    def quota_this_hour(self, organization: Organization) -> str:
        quota = quota_status(organization)
        return f"{quota.used} / {quota.limit}"

    @admin.display(description="failing subscriptions")
    def failing_subscriptions(self, organization: Organization) -> str:
        failing = Subscription.objects.filter(organization=organization).filter(
            Q(consecutive_failures__gt=0) | Q(active=False, disabled_at__isnull=False)
        )
        count = failing.count()
        if not count:
            return "0"
        url = reverse("admin:subscriptions_subscription_changelist") + f"?organization__id__exact={organization.pk}"
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description="oldest undelivered")
    def oldest_undelivered(self, organization: Organization) -> str:
        oldest = (
            Delivery.objects.filter(organization=organization, status=DeliveryStatus.PENDING)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return timesince(oldest) + " ago" if oldest else "—"


# Core registered its own page (importing sapien.core.admin above made sure of it): this one replaces it.
admin.site.unregister(Organization)
admin.site.register(Organization, OrganizationOperationsAdmin)
