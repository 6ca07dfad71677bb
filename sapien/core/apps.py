from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "sapien.core"
    label = "core"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        # Make the project's Celery app the current one in every process that loads Django.
        import sapien.celery
        import sapien.core.schema  # noqa: F401  (registers the OpenAPI extension)
        from sapien.core import checks  # registers the deployment checks

        checks.warn_of_development_secret_key()
