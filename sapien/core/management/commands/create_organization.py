from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sapien.core.errors import ApplicationError
from sapien.core.management.commands._shared import print_json
from sapien.core.models import Tier
from sapien.core.services import organization_create


class Command(BaseCommand):
    help = 'Creates an organization and prints {"id", "name", "tier"}.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--tier", default=Tier.FREE, choices=Tier.values)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            organization = organization_create(name=options["name"], tier=options["tier"])
        except ApplicationError as exc:
            raise CommandError(str(exc.detail)) from exc
        print_json(self, {"id": str(organization.id), "name": organization.name, "tier": organization.tier})
