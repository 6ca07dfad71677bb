from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from sapien.core.history_admin import HistoryModelAdmin, IdListFilter
from sapien.core.models import Organization
from sapien.events.catalog import EVENT_TYPES
from sapien.events.models import Event
from sapien.events.notices import maintenance_announce
from sapien.events.selectors import with_relayed


class EventTypeListFilter(admin.FieldListFilter):
    """The catalog's event types, for any field holding one: Django's default would read the column's distinct
    values from the whole table on every page."""

    def __init__(self, field: Any, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any,
                 field_path: str) -> None:  # fmt: skip
        self.parameter = field_path
        super().__init__(field, request, params, model, model_admin, field_path)
        values = self.used_parameters.get(self.parameter)
        self.value = str(values[-1]) if isinstance(values, list) and values else None

    def expected_parameters(self) -> list[str | None]:
        return [self.parameter]

    def choices(self, changelist: Any) -> Iterator[Any]:
        yield {
            "selected": self.value is None,
            "query_string": changelist.get_query_string(remove=[self.parameter]),
            "display": "All",
        }
        for event_type in EVENT_TYPES:
            yield {
                "selected": self.value == event_type,
                "query_string": changelist.get_query_string({self.parameter: event_type}),
                "display": event_type,
            }


@admin.register(Event)
class EventAdmin(HistoryModelAdmin[Event]):
    """The event log, newest first, by organization and type (``sapien.core.history_admin``)."""

    history_time_field = "created_at"
    history_filter_indexes = {
        (): "event_created_idx",
        ("organization",): "event_org_created_idx",
        ("organization", "type"): "event_org_type_created_idx",
    }
    search_help_text = "An event id, exactly."
    list_display = ["id", "type", "organization_link", "created_at", "relayed"]
    list_filter = [("organization", IdListFilter), ("type", EventTypeListFilter)]
    list_select_related = ["organization"]
    readonly_fields = ["id", "organization", "type", "body", "created_at", "relayed", "recipient_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return with_relayed(super().get_queryset(request))

    @admin.display(boolean=True, description="relayed")
    def relayed(self, event: Event) -> bool:
        return bool(getattr(event, "relayed", True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="organization")
    def organization_link(self, event: Event) -> str:
        return format_html('<a href="?organization={}">{}</a>', event.organization_id, event.organization)


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
