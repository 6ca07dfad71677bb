"""Every saved or deleted entity records its event, in the same transaction.

``QuerySet.update()`` and ``bulk_create()`` bypass model signals: a bulk path must
call ``record_entity_event()`` itself for each row it changes.
"""

import uuid
from typing import Any

from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from sapien.entities.models import Person, Pet, Toy, TracksOriginalValues
from sapien.events.outbox import record_event

# API field name -> model attribute, for the ``changes`` of an ``*.updated`` event.
TRACKED_FIELDS: dict[type[Model], dict[str, str]] = {
    Person: {"name": "name", "email": "email", "status": "status", "notes": "notes", "attributes": "attributes"},
    Pet: {"name": "name", "type": "type", "owner": "owner_id"},
    Toy: {"name": "name", "pet": "pet_id"},
}
EVENT_PREFIX: dict[type[Model], str] = {Person: "person", Pet: "pet", Toy: "toy"}
# The reverse relations each entity's representation shows.
CHILDREN: dict[type[Model], dict[str, type[Model]]] = {Person: {"pets": Pet}, Pet: {"toys": Toy}}


def entity_representation(instance: Model) -> dict[str, Any]:
    """The entity as the API renders it. Its serializers are imported with the first change, not with these
    receivers: workers and the relay, which change no entity, load no DRF serializer."""
    from sapien.entities.serializers import entity_representation as representation

    return representation(instance)


def no_rows(model: type[Model]) -> QuerySet[Any]:
    """An empty queryset already evaluated, as Django's own prefetching leaves one: iterating ``none()`` would
    still compile its SQL (the model's ordering, its joins) to find it has nothing to run, a seventh of a create's
    time."""
    rows = model._default_manager.none()
    rows._result_cache = []
    rows._prefetch_done = True  # type: ignore[attr-defined]
    return rows


def _json_value(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def entity_changes(instance: TracksOriginalValues) -> dict[str, dict[str, Any]]:
    changes = {}
    for api_name, attname in TRACKED_FIELDS[type(instance)].items():
        old, new = _json_value(instance.original_value(attname)), _json_value(getattr(instance, attname))
        if old != new:
            changes[api_name] = {"old": old, "new": new}
    return changes


def record_entity_event(instance: TracksOriginalValues, action: str, data: dict[str, Any] | None = None) -> None:
    changes = entity_changes(instance) if action == "updated" else None
    if action == "updated" and not changes:
        return  # a save that changed nothing is not an event
    record_event(
        organization_id=instance.organization_id,  # type: ignore[attr-defined]
        event_type=f"{EVENT_PREFIX[type(instance)]}.{action}",
        data=data if data is not None else entity_representation(instance),
        changes=changes,
    )


@receiver(post_save, sender=Person)
@receiver(post_save, sender=Pet)
@receiver(post_save, sender=Toy)
def entity_saved(sender: type[Model], instance: TracksOriginalValues, created: bool, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # fixtures loading
    if created:
        # Nothing can point to a row that did not exist: its children need no query (event and response).
        instance._prefetched_objects_cache = {  # type: ignore[attr-defined]
            name: no_rows(model) for name, model in CHILDREN.get(type(instance), {}).items()
        }
    record_entity_event(instance, "created" if created else "updated")
    instance.remember_current_values()


@receiver(pre_delete, sender=Person)
@receiver(pre_delete, sender=Pet)
@receiver(pre_delete, sender=Toy)
def entity_deleting(sender: type[Model], instance: TracksOriginalValues, **kwargs: Any) -> None:
    # Rendered before the delete, while a Person's pets still exist.
    instance._deleted_representation = entity_representation(instance)  # type: ignore[attr-defined]


@receiver(post_delete, sender=Person)
@receiver(post_delete, sender=Pet)
@receiver(post_delete, sender=Toy)
def entity_deleted(sender: type[Model], instance: TracksOriginalValues, **kwargs: Any) -> None:
    record_entity_event(instance, "deleted", data=getattr(instance, "_deleted_representation", None))
