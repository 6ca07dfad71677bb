from sapien.core.routers import OptionalSlashRouter
from sapien.events.views import EventViewSet

router = OptionalSlashRouter()
router.register("events", EventViewSet, basename="event")

urlpatterns = router.urls
