"""The operator commands of the README ("Operators"), each printing one JSON object."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sapien.core.models import Application, Organization, User

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict:
    out = StringIO()
    call_command(*args, stdout=out)
    printed = out.getvalue().strip()
    assert "\n" not in printed
    return json.loads(printed)


def test_create_organization_prints_id_name_and_tier() -> None:
    printed = run("create_organization", "Acme", "--tier", "enterprise")

    organization = Organization.objects.get(pk=printed["id"])
    assert printed == {"id": str(organization.id), "name": "Acme", "tier": "enterprise"}


def test_create_client_prints_a_secret_that_is_stored_only_hashed() -> None:
    organization = Organization.objects.create(name="Acme")

    printed = run("create_client", str(organization.id), "--name", "svc", "--scopes", "entities:read events:read")

    application = Application.objects.get(client_id=printed["client_id"])
    assert printed["client_secret"]
    assert application.client_secret != printed["client_secret"]
    assert application.organization == organization
    assert printed["scopes"] == ["entities:read", "events:read"]
    assert printed["grant_type"] == "client-credentials"


def test_create_client_refuses_an_unknown_scope() -> None:
    organization = Organization.objects.create(name="Acme")

    with pytest.raises(CommandError, match="Unknown scopes: everything"):
        call_command(
            "create_client", str(organization.id), "--name", "svc", "--scopes", "everything", stdout=StringIO()
        )
    assert Application.objects.count() == 0


def test_create_user_prints_id_and_email() -> None:
    organization = Organization.objects.create(name="Acme")

    printed = run("create_user", str(organization.id), "Ada@Example.com", "--password", "correct-horse")

    user = User.objects.get(pk=printed["id"])
    assert printed["email"] == "ada@example.com"
    assert user.organization == organization
    assert user.check_password("correct-horse")


def test_commands_refuse_an_unknown_organization() -> None:
    with pytest.raises(CommandError, match="No organization"):
        call_command("create_user", "00000000-0000-0000-0000-000000000000", "a@b.c", "--password", "x" * 10)
