from django.contrib import admin
from django.http import HttpRequest

from sapien.events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ["id", "type", "organization", "created_at", "relayed_at"]
    list_filter = ["type", "organization"]
    search_fields = ["id", "type"]
    readonly_fields = ["id", "organization", "type", "body", "created_at", "relayed_at", "recipient_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
