from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timesince import timesince
from oauth2_provider.admin import ApplicationAdmin as OAuthApplicationAdmin

from sapien.core.models import Application, Organization, User
from sapien.events.notices import maintenance_announce
from sapien.events.quota import quota_status

admin.site.site_header = "Sapien ESL operations"
admin.site.site_title = "Sapien ESL"


class MaintenanceForm(forms.Form):
    starts_at = forms.DateTimeField(help_text="UTC, e.g. 2026-12-01 02:00")
    ends_at = forms.DateTimeField(help_text="UTC")
    message = forms.CharField(max_length=500, initial="Scheduled maintenance.")


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    """Per organization: this hour's quota use, failing subscriptions and the oldest undelivered event."""

    list_display = ["name", "tier", "quota_this_hour", "failing_subscriptions", "oldest_undelivered", "created_at"]
    list_filter = ["tier"]
    search_fields = ["name", "id"]
    actions = ["announce_maintenance"]

    @admin.display(description="events this hour")
    def quota_this_hour(self, organization: Organization) -> str:
        quota = quota_status(organization)
        return f"{quota.used} / {quota.limit}"

    @admin.display(description="failing subscriptions")
    def failing_subscriptions(self, organization: Organization) -> str:
        from django.apps import apps

        subscription = apps.get_model("subscriptions", "Subscription")
        failing = subscription.objects.filter(organization=organization).filter(
            Q(consecutive_failures__gt=0) | Q(active=False, disabled_at__isnull=False)
        )
        count = failing.count()
        if not count:
            return "0"
        url = reverse("admin:subscriptions_subscription_changelist") + f"?organization__id__exact={organization.pk}"
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description="oldest undelivered")
    def oldest_undelivered(self, organization: Organization) -> str:
        from django.apps import apps

        delivery = apps.get_model("deliveries", "Delivery")
        oldest = (
            delivery.objects.filter(organization=organization, status="pending")
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return timesince(oldest) + " ago" if oldest else "—"

    @admin.action(description="Announce a maintenance window to the selected organizations")
    def announce_maintenance(self, request: HttpRequest, queryset: QuerySet[Organization]) -> TemplateResponse | None:
        form = MaintenanceForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            count = maintenance_announce(
                starts_at=form.cleaned_data["starts_at"], ends_at=form.cleaned_data["ends_at"],
                message=form.cleaned_data["message"], organizations=queryset, actor=str(request.user.pk),
            )  # fmt: skip
            self.message_user(request, f"Maintenance announced to {count} organizations.", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "core/announce_maintenance.html",
            {**self.admin_site.each_context(request), "form": form, "organizations": queryset,
             "action_checkbox_name": ACTION_CHECKBOX_NAME, "title": "Announce maintenance"},
        )  # fmt: skip


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "organization", "is_active", "is_staff"]
    list_filter = ["organization", "is_active", "is_staff"]
    search_fields = ["email", "name"]
    fieldsets = (
        (None, {"fields": ("email", "password", "name", "organization")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "organization", "password1", "password2")}),)


admin.site.unregister(Application) if admin.site.is_registered(Application) else None


@admin.register(Application)
class ApplicationAdmin(OAuthApplicationAdmin):
    list_display = ["name", "client_id", "organization", "authorization_grant_type", "scopes"]
    list_filter = ["organization", "authorization_grant_type"]
    search_fields = ["name", "client_id"]
