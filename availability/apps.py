from django.apps import AppConfig


class AvailabilityConfig(AppConfig):
    name = "availability"
    verbose_name = "Availability and presence"

    def ready(self) -> None:
        # In ready(): the receivers import the models, which cannot be imported while the app registry loads.
        from availability import signals  # noqa: F401
