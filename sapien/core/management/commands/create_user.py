from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sapien.core.errors import ApplicationError
from sapien.core.management.commands._shared import organization_by_id, print_json
from sapien.core.services import user_create


class Command(BaseCommand):
    help = 'Creates a user of an organization and prints {"id", "email"}.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization_id")
        parser.add_argument("email")
        parser.add_argument("--password", required=True)
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_id(options["organization_id"])
        try:
            user = user_create(
                organization=organization, email=options["email"], password=options["password"], name=options["name"]
            )
        except ApplicationError as exc:
            raise CommandError(str(exc.detail)) from exc
        print_json(self, {"id": str(user.id), "email": user.email, "organization_id": str(organization.id)})
