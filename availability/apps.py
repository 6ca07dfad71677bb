from django.apps import AppConfig


class AvailabilityConfig(AppConfig):
    name = "availability"
    verbose_name = "Availability and presence"

    def ready(self) -> None:
        from availability import signals  # noqa: F401
