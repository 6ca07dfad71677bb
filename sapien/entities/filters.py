import django_filters

from sapien.core.filters import FilterSet, UTCDateTimeFilter
from sapien.entities.models import Person, PersonStatus, Pet, Toy


class PersonFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    email = django_filters.CharFilter(lookup_expr="iexact")
    status = django_filters.ChoiceFilter(choices=PersonStatus.choices)
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Person
        fields = ["name", "email", "status"]


class PetFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    type = django_filters.CharFilter(lookup_expr="iexact")
    owner = django_filters.UUIDFilter(field_name="owner_id")

    class Meta:
        model = Pet
        fields = ["name", "type", "owner"]


class ToyFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    pet = django_filters.UUIDFilter(field_name="pet_id")

    class Meta:
        model = Toy
        fields = ["name", "pet"]
