from sapien.core.routers import OptionalSlashRouter
from subscriptions.views import SubscriptionViewSet

router = OptionalSlashRouter()
router.register("subscriptions", SubscriptionViewSet, basename="subscription")

urlpatterns = router.urls
