"""How entities look in the API, and therefore in their events' ``data``."""

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import serializers

from sapien.entities.models import Person, Pet, Toy


class OrganizationScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference to another entity: one of another organization is reported as not existing."""

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        assert queryset is not None
        request = self.context.get("request")
        organization = getattr(request, "organization", None)
        return queryset.filter(organization=organization) if organization is not None else queryset.none()


class PetSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Pet
        fields = ["id", "name", "type"]


class PersonSerializer(serializers.ModelSerializer):
    pets = PetSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Person
        fields = ["id", "name", "email", "status", "notes", "attributes", "pets", "created_at", "updated_at"]
        read_only_fields = ["id", "pets", "created_at", "updated_at"]

    def validate_attributes(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class ToySummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Toy
        fields = ["id", "name"]


class PetSerializer(serializers.ModelSerializer):
    owner = OrganizationScopedRelatedField(queryset=Person.objects.all(), allow_null=True, required=False)
    toys = ToySummarySerializer(many=True, read_only=True)

    class Meta:
        model = Pet
        fields = ["id", "name", "type", "owner", "toys", "created_at", "updated_at"]
        read_only_fields = ["id", "toys", "created_at", "updated_at"]


class ToySerializer(serializers.ModelSerializer):
    pet = OrganizationScopedRelatedField(queryset=Pet.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Toy
        fields = ["id", "name", "pet", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


SERIALIZER_BY_MODEL: dict[type[Model], type[serializers.ModelSerializer]] = {
    Person: PersonSerializer,
    Pet: PetSerializer,
    Toy: ToySerializer,
}


def entity_representation(instance: Model) -> dict[str, Any]:
    """The entity exactly as the API shows it: the ``data`` of its events."""
    serializer_class = SERIALIZER_BY_MODEL[type(instance)]
    return dict(serializer_class(instance).data)
