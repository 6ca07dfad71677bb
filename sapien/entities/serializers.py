"""How entities look in the API, and therefore in their events' ``data``."""

import copy
import functools
from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import serializers
from rest_framework.fields import Field
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from sapien.core.per_class import built_once_per_class
from sapien.entities.models import Person, Pet, Toy


class OrganizationScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference to another entity: one of another organization is reported as not existing."""

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        assert queryset is not None
        request = self.context.get("request")
        organization = getattr(request, "organization", None)
        return queryset.filter(organization=organization) if organization is not None else queryset.none()


# Where an entity keeps the representation it was last saved with, and by which serializer class.
KEPT_REPRESENTATION = "_saved_representation"


class NoSurrogateCharacters(ProhibitSurrogateCharactersValidator):
    """DRF's refusal of lone surrogates, with the same message, that looks at each character in Python only when
    encoding the text (in C) finds one: the loop was a tenth of an entity create's CPU for a 1 KB text."""

    def __call__(self, value: Any) -> None:
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            super().__call__(value)


NO_SURROGATES = NoSurrogateCharacters()


def field_copy(field: Field) -> Field:
    """A field for one serializer. DRF deep-copies each field, which makes it anew from its arguments (half of an
    entity's validation); binding a field to its serializer sets only its own attributes (name, parent, source),
    so a shallow copy of a plain field is as good, and shares with the others only what none of them changes:
    its validators, choices and messages. A nested serializer binds its own fields and child: copied deeply."""
    return copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) else copy.copy(field)


class EntitySerializer(serializers.ModelSerializer):
    """Builds its fields and its validators from the model once per class, then gives each serializer a copy.

    DRF's ``ModelSerializer`` inspects the model again for every serializer it makes (every request): its fields,
    and its constraints for the validators of unique fields taken together (none of these models has any). Both
    depend on nothing but the class, and a copy is what DRF makes of declared fields anyway.

    An entity just saved carries the representation its event's ``data`` was made of (``entity_representation``):
    the response shows that one rather than rendering the same entity a second time.
    """

    def get_fields(self) -> dict[str, Field]:
        built = built_once_per_class(self, "_built_fields", self._fields_built)
        return {name: field_copy(field) for name, field in built.items()}

    def _fields_built(self) -> dict[str, Field]:
        built = super().get_fields()
        for field in built.values():
            field.validators = [
                NO_SURROGATES if type(validator) is ProhibitSurrogateCharactersValidator else validator
                for validator in field.validators
            ]
        return built

    def get_validators(self) -> list[Any]:
        return list(built_once_per_class(self, "_built_validators", super().get_validators))

    def to_representation(self, instance: Any) -> dict[str, Any]:
        kept = instance.__dict__.pop(KEPT_REPRESENTATION, None)  # once: a later change renders anew
        if kept is not None and kept[0] is type(self):
            return dict(kept[1])
        return super().to_representation(instance)


class PetSummarySerializer(EntitySerializer):
    class Meta:
        model = Pet
        fields = ["id", "name", "type"]


class PersonSerializer(EntitySerializer):
    pets = PetSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Person
        fields = ["id", "name", "email", "status", "notes", "attributes", "pets", "created_at", "updated_at"]
        read_only_fields = ["id", "pets", "created_at", "updated_at"]

    def validate_attributes(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class ToySummarySerializer(EntitySerializer):
    class Meta:
        model = Toy
        fields = ["id", "name"]


class PetSerializer(EntitySerializer):
    owner = OrganizationScopedRelatedField(queryset=Person.objects.all(), allow_null=True, required=False)
    toys = ToySummarySerializer(many=True, read_only=True)

    class Meta:
        model = Pet
        fields = ["id", "name", "type", "owner", "toys", "created_at", "updated_at"]
        read_only_fields = ["id", "toys", "created_at", "updated_at"]


class ToySerializer(EntitySerializer):
    pet = OrganizationScopedRelatedField(queryset=Pet.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Toy
        fields = ["id", "name", "pet", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


SERIALIZER_BY_MODEL: dict[type[Model], type[EntitySerializer]] = {
    Person: PersonSerializer,
    Pet: PetSerializer,
    Toy: ToySerializer,
}


@functools.cache
def representer(model: type[Model]) -> EntitySerializer:
    """One serializer per model for every thread: ``to_representation`` only reads its fields."""
    return SERIALIZER_BY_MODEL[model]()


def entity_representation(instance: Model) -> dict[str, Any]:
    """The entity exactly as the API shows it: the ``data`` of its events. Kept on the instance for the response
    of the request that changed it (``EntitySerializer.to_representation``)."""
    serializer = representer(type(instance))
    data = dict(serializer.to_representation(instance))
    instance.__dict__[KEPT_REPRESENTATION] = (type(serializer), data)
    return data
