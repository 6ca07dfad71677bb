from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sapien.core.management.commands._shared import organization_by_id, print_json
from sapien.events.notices import maintenance_announce


def aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-12-01T02:00:00Z")
    return moment


class Command(BaseCommand):
    help = "Announces a maintenance window (system.maintenance.scheduled) to every organization's subscribers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--starts-at", required=True, help="ISO 8601 with a zone, e.g. 2026-12-01T02:00:00Z")
        parser.add_argument("--ends-at", required=True)
        parser.add_argument("--message", default="Scheduled maintenance.")
        parser.add_argument("--organization", help="Only this organization's subscribers")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            starts_at, ends_at = aware(options["starts_at"]), aware(options["ends_at"])
        except ValueError as exc:
            raise CommandError(f"Bad time: {exc}") from exc
        organizations = [organization_by_id(options["organization"])] if options["organization"] else None
        try:
            count = maintenance_announce(
                starts_at=starts_at, ends_at=ends_at, message=options["message"], organizations=organizations
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        print_json(self, {"announced_to": count, "starts_at": options["starts_at"], "ends_at": options["ends_at"]})
