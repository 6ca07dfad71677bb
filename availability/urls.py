from django.urls import re_path

from availability import views
from sapien.core.routers import UUID_PATTERN as UUID
from sapien.core.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("availability/profiles", views.ProfileViewSet, basename="availability-profile")

urlpatterns = [
    re_path(r"^availability/me/?$", views.MyAvailabilityView.as_view(), name="availability-me"),
    re_path(r"^availability/?$", views.AvailabilityListView.as_view(), name="availability-list"),
    re_path(
        rf"^users/(?P<user_id>{UUID})/availability/?$", views.UserAvailabilityView.as_view(), name="user-availability"
    ),
    re_path(
        rf"^users/(?P<user_id>{UUID})/availability/override/?$",
        views.OverrideView.as_view(),
        name="availability-override",
    ),
    re_path(r"^presence/heartbeat/?$", views.HeartbeatView.as_view(), name="presence-heartbeat"),
    re_path(r"^presence/disconnect/?$", views.DisconnectView.as_view(), name="presence-disconnect"),
    *router.urls,
]
