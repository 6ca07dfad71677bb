"""A guard for the modules of Celery tasks: they load under Sapien's Celery app only.

Each process that publishes imports the app (``sapien.celery``) from its entry point: ``manage.py`` (the relay),
``sapien.worker``, beat (``sapien.beat``) and the tests. The web process does not, and publishes nothing
(``sapien/events/wakeups.py``). Without the guard, a task imported in a process that forgot would bind to
Celery's default app and publish to its default broker (amqp://localhost), where no worker listens.
"""

from django.core.exceptions import ImproperlyConfigured

APP_NAME = "sapien"


def require_sapien_app(module: str) -> None:
    from celery import current_app

    if current_app.main != APP_NAME:
        raise ImproperlyConfigured(
            f"{module} was imported before Sapien's Celery app: this process's entry point must import sapien.celery "
            "first (manage.py, sapien.worker and the tests' conftest do). The web process publishes nothing."
        )
