from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "sapien.core"
    label = "core"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        # Make the project's Celery app the current one in every process that loads Django. In ready(): a start-up
        # step, like the registrations below; no code of core uses the composition root (sapien.celery).
        import sapien.celery  # noqa: F401

        # Registrations, in ready() where Django documents them: the deployment checks. The OpenAPI extension
        # registers with the URLconf (sapien/urls.py), which every schema is generated from: workers and the
        # relay load no schema machinery.
        from sapien.core import checks

        checks.warn_of_development_secret_key()
