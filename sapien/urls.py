from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

import sapien.core.schema  # noqa: F401 - registers the OpenAPI extension for the schema views below
from deliveries.metrics import metrics_view
from sapien.core import idempotent_requests, oauth_views
from sapien.core.errors import json_error_view
from sapien.core.health import health_view
from sapien.events.selectors import outbox_health

# Every POST and PATCH of the API honours Idempotency-Key, in the request's transaction: installed on DRF's
# APIView by the URLconf, which only the web process loads.
idempotent_requests.install()

urlpatterns = [
    path("health", health_view(database_reports={"outbox": outbox_health}), name="health"),
    path("metrics", metrics_view, name="metrics"),
    re_path(r"^oauth/token/?$", csrf_exempt(oauth_views.TokenView.as_view()), name="oauth-token"),
    re_path(r"^oauth/revoke_token/?$", csrf_exempt(oauth_views.RevokeTokenView.as_view()), name="oauth-revoke"),
    re_path(r"^oauth/authorize/?$", oauth_views.AuthorizationView.as_view(), name="authorize"),
    path("api/", include("sapien.entities.urls")),
    path("api/v1/", include("subscriptions.urls")),
    path("api/v1/", include("deliveries.urls")),
    path("api/v1/", include("availability.urls")),
    path("api/v1/", include("sapien.events.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="core/redoc.html"), name="api-redoc"
    ),
    path("admin/", admin.site.urls),
    # Where the authorization-code flow signs a user in before they approve a client.
    path("accounts/login/", LoginView.as_view(template_name="core/login.html"), name="login"),
]

handler400 = json_error_view(400, "bad_request", "The request is malformed.")
handler403 = json_error_view(403, "permission_denied", "You do not have permission to do this.")
handler404 = json_error_view(404, "not_found", "Not found.")
handler500 = json_error_view(500, "internal_error", "An unexpected error occurred.")
