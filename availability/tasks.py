"""Celery tasks of availability: thin and idempotent."""

from typing import Any

from celery import shared_task

from availability.timers import run_due_timers
from sapien.core.celery_app import require_sapien_app

require_sapien_app(__name__)  # before any task binds to an app (sapien/core/celery_app.py)


@shared_task(name="availability.run_timers", ignore_result=True)
def run_timers(**kwargs: Any) -> None:
    run_due_timers()
