from django.apps import AppConfig


class EntitiesConfig(AppConfig):
    name = "sapien.entities"
    label = "entities"
    verbose_name = "Entities"

    def ready(self) -> None:
        # In ready(): the receivers import the models, which cannot be imported while the app registry loads.
        from sapien.entities import signals  # noqa: F401
