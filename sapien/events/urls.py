from sapien.core.routers import OptionalSlashRouter
from sapien.events.views import EventTypeViewSet, EventViewSet

router = OptionalSlashRouter()
router.register("events", EventViewSet, basename="event")
router.register("event-types", EventTypeViewSet, basename="event-type")

urlpatterns = router.urls
