from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "sapien.core"
    label = "core"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        # No Celery app here: each process that publishes imports it from its entry point, and the web process, which
        # publishes nothing, loads no Celery, kombu or broker client (sapien/core/celery_app.py).
        # Registrations, in ready() where Django documents them: the deployment checks. The OpenAPI extension
        # registers with the URLconf (sapien/urls.py), which every schema is generated from: workers and the
        # relay load no schema machinery.
        from sapien.core import checks

        checks.warn_of_development_secret_key()
