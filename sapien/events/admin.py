from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from sapien.core.models import Organization
from sapien.events.models import Event
from sapien.events.notices import maintenance_announce


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ["id", "type", "organization", "created_at", "relayed_at"]
    list_filter = ["type", "organization"]
    search_fields = ["id", "type"]
    readonly_fields = ["id", "organization", "type", "body", "created_at", "relayed_at", "recipient_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class MaintenanceForm(forms.Form):
    starts_at = forms.DateTimeField(help_text="UTC, e.g. 2026-12-01 02:00")
    ends_at = forms.DateTimeField(help_text="UTC")
    message = forms.CharField(max_length=500, initial="Scheduled maintenance.")


@admin.action(description="Announce a maintenance window to the selected organizations")
def announce_maintenance(
    modeladmin: admin.ModelAdmin[Organization], request: HttpRequest, queryset: QuerySet[Organization]
) -> TemplateResponse | None:
    """An action of the organization admin (``deliveries.admin``): the form, then ``maintenance_announce``."""
    form = MaintenanceForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        count = maintenance_announce(
            starts_at=form.cleaned_data["starts_at"], ends_at=form.cleaned_data["ends_at"],
            message=form.cleaned_data["message"], organizations=queryset, actor=str(request.user.pk),
        )  # fmt: skip
        modeladmin.message_user(request, f"Maintenance announced to {count} organizations.", messages.SUCCESS)
        return None
    return TemplateResponse(
        request,
        "events/announce_maintenance.html",
        {**modeladmin.admin_site.each_context(request), "form": form, "organizations": queryset,
         "action_checkbox_name": ACTION_CHECKBOX_NAME, "title": "Announce maintenance"},
    )  # fmt: skip
