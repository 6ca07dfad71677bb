"""Run in a subprocess against a dedicated PostgreSQL: sets up an organization, or writes events as a client would.

    python -m tests.reliability.pg_client setup CALLBACK_URL SUBSCRIPTIONS  -> prints the organization id
    python -m tests.reliability.pg_client write ORGANIZATION_ID COUNT       -> prints how many were written

The writer retries a write the database refused while restarting, as an API client retries a 5xx.
"""

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")

import django

django.setup()

from django.db import InterfaceError, OperationalError, close_old_connections, transaction  # noqa: E402

from sapien.core.models import Organization  # noqa: E402
from sapien.entities.models import Person  # noqa: E402
from subscriptions.models import Subscription  # noqa: E402


def setup(callback_url: str, subscriptions: int) -> None:
    organization = Organization.objects.create(name="Restart", tier="enterprise")
    for index in range(subscriptions):
        Subscription.objects.create(
            organization=organization,
            callback_url=f"{callback_url}/{index}",
            events=["person.created"],
            secret="s" * 20,
        )
    print(organization.id)


def write(organization_id: str, count: int) -> None:
    written = 0
    while written < count:
        try:
            with transaction.atomic():
                Person.objects.create(organization_id=organization_id, name=f"Person {written}")
            written += 1
            time.sleep(0.02)
        except (OperationalError, InterfaceError):
            close_old_connections()
            time.sleep(0.2)
    print(written)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "setup":
        setup(args[0], int(args[1]))
    else:
        write(args[0], int(args[1]))
