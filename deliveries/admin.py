from django.contrib import admin, messages
from django.db.models import Min, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timesince import timesince

from deliveries.models import Blob, Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.services import delivery_redeliver
from sapien.core.admin import OrganizationAdmin
from sapien.core.history_admin import HistoryModelAdmin, IdListFilter
from sapien.core.models import Organization
from sapien.events.admin import EventTypeListFilter, announce_maintenance
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
class DeliveryAdmin(HistoryModelAdmin[Delivery]):
    """The delivery log, newest event first, by subscription and then status or event type
    (``sapien.core.history_admin``). No organization filter: no index of deliveries leads with it."""

    history_time_field = "event_created_at"  # the event's time, copied onto the delivery: the partition key
    history_filter_indexes = {
        (): "delivery_event_created_idx",
        ("subscription",): "delivery_sub_log_idx",
        ("subscription", "status"): "delivery_sub_status_idx",
        ("subscription", "event_type"): "delivery_sub_type_idx",
    }
    history_search_fields = ("pk", "event")
    search_help_text = "A delivery id or an event id, exactly."
    list_display = [
        "id", "event_type", "subscription_link", "status", "attempt_count", "last_status_code", history_time_field,
    ]  # fmt: skip
    list_filter = [("subscription", IdListFilter), "status", ("event_type", EventTypeListFilter)]
    list_select_related = ["subscription"]
    inlines = [AttemptInline]
    actions = ["redeliver"]
    readonly_fields = [
        "organization", "event", "subscription", "status", "attempt_count", "next_attempt_at", "last_status_code",
        "last_error", "created_at", "updated_at", "completed_at", "ordering_key",
    ]  # fmt: skip
    exclude = ["claim_token", "claimed_until"]

    @admin.display(description="subscription")
    def subscription_link(self, delivery: Delivery) -> str:
        return format_html('<a href="?subscription={}">{}</a>', delivery.subscription_id, delivery.subscription)

    @admin.action(description="Redeliver the selected deliveries now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = 0
        for delivery in queryset:
            delivery_redeliver(delivery=delivery)
            count += 1
        self.message_user(request, f"{count} deliveries will be sent again.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(HistoryModelAdmin[DeliveryAttempt]):
    """Every attempt, newest first, or one delivery's (``sapien.core.history_admin``). Append-only: read here."""

    history_time_field = "started_at"
    history_filter_indexes = {(): "attempt_started_idx", ("delivery",): "attempt_delivery_idx"}
    history_search_fields = ("pk", "delivery")
    search_help_text = "An attempt id or a delivery id, exactly."
    list_display = ["id", "started_at", "delivery_link", "number", "status_code", "succeeded", "duration_ms", "error"]
    list_filter = [("delivery", IdListFilter)]
    list_select_related = ()
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DeliveryAttempt | None = None) -> bool:
        return False

    @admin.display(description="delivery")
    def delivery_link(self, attempt: DeliveryAttempt) -> str:
        url = reverse("admin:deliveries_delivery_change", args=[attempt.delivery_id])
        return format_html('<a href="{}">{}</a>', url, attempt.delivery_id)


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
        # Each subscription's oldest pending delivery, one probe of delivery_sub_status_idx each: no index of
        # deliveries leads with the organization (a scan of all its deliveries, per row of this page).
        oldest_pending = (
            Delivery.objects.filter(subscription=OuterRef("pk"), status=DeliveryStatus.PENDING)
            .order_by("event_created_at")
            .values("event_created_at")[:1]
        )
        oldest = (
            Subscription.objects.filter(organization=organization)
            .annotate(oldest=Subquery(oldest_pending))
            .aggregate(first=Min("oldest"))["first"]
        )
        return timesince(oldest) + " ago" if oldest else "—"


# Core registered its own page (importing sapien.core.admin above made sure of it): this one replaces it.
admin.site.unregister(Organization)
admin.site.register(Organization, OrganizationOperationsAdmin)
