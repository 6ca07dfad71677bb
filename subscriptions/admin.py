from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from subscriptions.models import Subscription
from subscriptions.services import generate_secret, subscription_disable, subscription_update


class SubscriptionAdminForm(forms.ModelForm):
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only. Leave empty to keep the current secret.",
    )

    class Meta:
        model = Subscription
        fields = ["organization", "callback_url", "events", "secret", "active", "description", "disabled_reason"]

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret") or ""
        if not secret and self.instance.pk:
            return self.instance.secret
        if not secret:
            return generate_secret()
        return secret


class FailingFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("failing", "Failing"), ("disabled", "Disabled after failures")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> QuerySet[Subscription]:
        if self.value() == "failing":
            return queryset.filter(consecutive_failures__gt=0)
        if self.value() == "disabled":
            return queryset.filter(active=False, disabled_at__isnull=False)
        return queryset


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    form = SubscriptionAdminForm
    list_display = [
        "callback_url", "organization", "events_list", "active", "consecutive_failures", "disabled_reason",
        "masked_secret", "deliveries_link", "created_at",
    ]  # fmt: skip
    list_filter = ["active", "organization", FailingFilter]
    search_fields = ["callback_url", "id", "description"]
    readonly_fields = [
        "masked_secret",
        "consecutive_failures",
        "failing_since",
        "disabled_at",
        "created_at",
        "updated_at",
    ]
    actions = ["enable", "disable"]

    @admin.action(description="Enable the selected subscriptions")
    def enable(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        for subscription in queryset.filter(active=False):
            subscription_update(subscription=subscription, active=True)
        self.message_user(request, "Enabled. Replay what they missed from their delivery log or the API.")

    @admin.action(description="Disable the selected subscriptions")
    def disable(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        now = timezone.now()
        for subscription in queryset.filter(active=True):
            subscription_disable(subscription=subscription, reason=f"Disabled by {request.user} in the admin.", now=now)
        self.message_user(request, "Disabled.")

    @admin.display(description="events")
    def events_list(self, obj: Subscription) -> str:
        return ", ".join(obj.events)

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: Subscription) -> str:
        # By the URL's name: subscriptions imports nothing of deliveries (docs/architecture.md).
        url = reverse("admin:deliveries_delivery_changelist") + f"?subscription={obj.pk}"
        return format_html('<a href="{}">deliveries</a>', url)

    @admin.display(description="secret")
    def masked_secret(self, obj: Subscription) -> str:
        return f"{obj.secret[:4]}…{'•' * 8}" if obj.secret else ""
