from sapien.core.views import OrganizationScopedViewSet
from sapien.entities.filters import PersonFilter, PetFilter, ToyFilter
from sapien.entities.models import Person, Pet, Toy
from sapien.entities.serializers import PersonSerializer, PetSerializer, ToySerializer


class EntityViewSet(OrganizationScopedViewSet):
    read_scope = "entities:read"
    write_scope = "entities:write"


class PersonViewSet(EntityViewSet):
    queryset = Person.objects.prefetch_related("pets")
    serializer_class = PersonSerializer
    filterset_class = PersonFilter


class PetViewSet(EntityViewSet):
    queryset = Pet.objects.prefetch_related("toys")
    serializer_class = PetSerializer
    filterset_class = PetFilter


class ToyViewSet(EntityViewSet):
    queryset = Toy.objects.all()
    serializer_class = ToySerializer
    filterset_class = ToyFilter
