from sapien.core.routers import OptionalSlashRouter
from sapien.entities.views import PersonViewSet, PetViewSet, ToyViewSet

router = OptionalSlashRouter()
router.register("persons", PersonViewSet, basename="person")
router.register("pets", PetViewSet, basename="pet")
router.register("toys", ToyViewSet, basename="toy")

urlpatterns = router.urls
