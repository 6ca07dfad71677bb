from django.apps import AppConfig


class EntitiesConfig(AppConfig):
    name = "sapien.entities"
    label = "entities"
    verbose_name = "Entities"

    def ready(self) -> None:
        from sapien.entities import signals  # noqa: F401
