"""``GET /health``: real checks of the database and the broker, and what the apps report while the database is up.

Core imports no app: the apps' reports (the outbox's depth and lag, from ``sapien.events``) are handed to
``health_view`` by the composition root, ``sapien.urls``.
"""

import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from sapien import __version__
from sapien.core.broker_probe import broker_probe


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def check_broker() -> str | None:
    try:
        broker_probe(settings.CELERY_BROKER_URL, timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return f"{type(exc).__name__}: {exc}"
    return None


def health_view(*, database_reports: Mapping[str, Callable[[], Any]]) -> Callable[[HttpRequest], JsonResponse]:
    """The ``/health`` view: a section of the body for each of ``database_reports``, run while the database answers."""

    def health(request: HttpRequest) -> JsonResponse:
        started = time.monotonic()
        checks: dict[str, Any] = {}
        checked = (("database", check_database()), ("broker", check_broker()))
        failures = {name: error for name, error in checked if error}
        for name in ("database", "broker"):
            checks[name] = "ok" if name not in failures else failures[name]
        body: dict[str, Any] = {"status": "unhealthy" if failures else "healthy", "version": __version__}
        if "database" not in failures:
            body.update({name: report() for name, report in database_reports.items()})
        if failures:
            body["checks"] = checks
            body["failing"] = sorted(failures)
        response = JsonResponse(body, status=503 if failures else 200)
        response["X-Health-Check-Ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
        return response

    return health
