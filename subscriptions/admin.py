import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from sapien.events.catalog import is_valid_pattern
from subscriptions.custom_headers import InvalidHeaders, checked_headers, header_names
from subscriptions.models import MAX_IN_FLIGHT, MAX_RATE_LIMIT_PER_SECOND, Subscription
from subscriptions.payload_filter import InvalidFilter, checked_filter
from subscriptions.services import generate_secret, subscription_disable, subscription_update


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never shows a value, not even the one just submitted: what it takes is secret."""

    def format_value(self, value: Any) -> None:
        return None


class AsciiJSONField(forms.JSONField):
    """JSON shown with non-ASCII escaped: a value redisplayed after an error may hold a lone surrogate (written as
    ``\\ud800``), which the page could not encode as UTF-8."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, cls=self.encoder)


class SubscriptionAdminForm(forms.ModelForm):
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only. Leave empty to keep the current secret.",
    )
    new_headers = forms.CharField(
        label="Headers",
        widget=WriteOnlyTextarea(attrs={"rows": 3}),
        required=False,
        help_text='Write-only. A JSON object such as {"Authorization": "Bearer …"} replaces every custom header; '
        "{} removes them all; leave empty to keep the current ones.",
    )

    filter = AsciiJSONField(
        required=False,
        help_text='A JSON object the event must contain (PostgreSQL @>), such as {"data": {"current_status": "busy"}}. '
        "Empty, null or {}: no filter.",
    )
    rate_limit_per_second = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_RATE_LIMIT_PER_SECOND,
        help_text="At most this many deliveries start in any one second, on all workers. Empty: no limit.",
    )  # fmt: skip
    max_in_flight = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_IN_FLIGHT,
        help_text="At most this many requests open at once, on all workers. Empty: ESL_DEFAULT_MAX_IN_FLIGHT.",
    )  # fmt: skip

    class Meta:
        model = Subscription
        fields = [
            "organization", "callback_url", "events", "secret", "active", "ordered", "description", "disabled_reason",
            "rate_limit_per_second", "max_in_flight", "filter",
        ]  # fmt: skip

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret") or ""
        if not secret and self.instance.pk:
            return self.instance.secret
        if not secret:
            return generate_secret()
        return secret

    def clean_events(self) -> list[str]:
        """The API's rule (``SubscriptionSerializer.validate_events``): known types, families and ``*`` only."""
        events: list[str] = self.cleaned_data.get("events") or []
        unknown = [pattern for pattern in events if not is_valid_pattern(pattern)]
        if unknown:
            shown = ", ".join(repr(pattern[:64]) for pattern in unknown[:5])
            raise forms.ValidationError(f"Unknown event types: {shown}. Separate patterns with commas.")
        return list(dict.fromkeys(events))

    def clean_filter(self) -> dict[str, Any] | None:
        try:
            return checked_filter(self.cleaned_data.get("filter"))
        except InvalidFilter as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_new_headers(self) -> dict[str, str] | None:
        text: str = self.cleaned_data.get("new_headers") or ""
        if not text.strip():
            return None
        try:
            return checked_headers(json.loads(text))
        except ValueError as exc:  # InvalidHeaders, or not JSON: the message never quotes a value
            message = str(exc) if isinstance(exc, InvalidHeaders) else "Enter the headers as a JSON object."
            raise forms.ValidationError(message) from None

    def save(self, commit: bool = True) -> Subscription:
        headers = self.cleaned_data.get("new_headers")
        if headers is not None:
            self.instance.headers = headers
        return super().save(commit)


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
    list_filter = ["active", "ordered", "organization", FailingFilter]
    search_fields = ["callback_url", "id", "description"]
    readonly_fields = [
        "throttled_until",
        "masked_secret",
        "masked_headers",
        "consecutive_failures",
        "failing_since",
        "failing_notified_at",
        "disabled_at",
        "probe_next_at",
        "probes_sent",
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

    @admin.display(description="custom headers")
    def masked_headers(self, obj: Subscription) -> str:
        return ", ".join(f"{name}: {'•' * 8}" for name in header_names(obj.headers)) or "none"
