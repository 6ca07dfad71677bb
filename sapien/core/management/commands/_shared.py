"""What the operator commands share: finding the organization and printing one JSON object."""

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from sapien.core.models import Organization


def organization_by_id(organization_id: str) -> Organization:
    try:
        return Organization.objects.get(pk=organization_id)
    except (Organization.DoesNotExist, ValidationError, ValueError) as exc:
        raise CommandError(f"No organization with id {organization_id}.") from exc


def print_json(command: BaseCommand, payload: dict[str, Any]) -> None:
    command.stdout.write(json.dumps(payload))
