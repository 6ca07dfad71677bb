"""The Celery app and the beat schedule.

Celery carries wake-ups only: what is due lives in PostgreSQL, and the periodic
sweeps below guarantee progress when a message is lost.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")

app = Celery("sapien")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["deliveries", "availability"])

app.conf.beat_schedule = {
    "relay-outbox-sweep": {"task": "deliveries.relay_outbox", "schedule": 5.0},
    "deliver-due-sweep": {"task": "deliveries.sweep_due", "schedule": 1.0},
    "availability-timers": {"task": "availability.run_timers", "schedule": 1.0},
    "retention-purge": {"task": "deliveries.purge_expired", "schedule": 300.0},
}
