from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sapien.core.errors import ApplicationError
from sapien.core.management.commands._shared import organization_by_id, print_json
from sapien.core.services import GRANT_TYPES, client_create


class Command(BaseCommand):
    help = 'Creates an OAuth client of an organization and prints {"client_id", "client_secret", …} once.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization_id")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help='Space-separated, e.g. "entities:read entities:write"')
        parser.add_argument("--grant", default="client_credentials", choices=sorted(GRANT_TYPES))
        parser.add_argument("--redirect-uris", default="", help="Space-separated; for authorization-code clients")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_id(options["organization_id"])
        try:
            created = client_create(
                organization=organization,
                name=options["name"],
                scopes=options["scopes"].replace(",", " ").split(),
                grant=options["grant"],
                redirect_uris=options["redirect_uris"],
            )
        except ApplicationError as exc:
            raise CommandError(str(exc.detail)) from exc
        application = created.application
        print_json(
            self,
            {
                "client_id": application.client_id,
                "client_secret": created.client_secret,
                "organization_id": str(organization.id),
                "name": application.name,
                "grant_type": application.authorization_grant_type,
                "scopes": application.scope_list,
            },
        )
