from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from oauth2_provider.admin import ApplicationAdmin as OAuthApplicationAdmin

from sapien.core.models import Application, Organization, User

admin.site.site_header = "Sapien ESL operations"
admin.site.site_title = "Sapien ESL"


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    """Organizations and their tiers.

    ``deliveries.admin`` extends this page with the quota, the failing subscriptions, the oldest undelivered
    event and the maintenance notice: it may read those apps, and core imports none.
    """

    list_display = ["name", "tier", "created_at"]
    list_filter = ["tier"]
    search_fields = ["name", "id"]


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
