from django import forms
from django.contrib import admin

from subscriptions.models import Subscription


class SubscriptionAdminForm(forms.ModelForm):  # type: ignore[type-arg]
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
            from subscriptions.services import generate_secret

            return generate_secret()
        return secret


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    form = SubscriptionAdminForm
    list_display = ["callback_url", "organization", "events_list", "active", "masked_secret", "created_at"]
    list_filter = ["active", "organization"]
    search_fields = ["callback_url", "id", "description"]
    readonly_fields = ["masked_secret", "created_at", "updated_at"]

    @admin.display(description="events")
    def events_list(self, obj: Subscription) -> str:
        return ", ".join(obj.events)

    @admin.display(description="secret")
    def masked_secret(self, obj: Subscription) -> str:
        return f"{obj.secret[:4]}…{'•' * 8}" if obj.secret else ""
