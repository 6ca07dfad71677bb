"""Operator actions on organizations, users and OAuth clients."""

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from sapien.core.errors import ApplicationError
from sapien.core.models import Application, Organization, Tier, User

GRANT_TYPES = {
    "client_credentials": Application.GRANT_CLIENT_CREDENTIALS,
    "password": Application.GRANT_PASSWORD,
    "authorization-code": Application.GRANT_AUTHORIZATION_CODE,
    "authorization_code": Application.GRANT_AUTHORIZATION_CODE,
}


@dataclass(frozen=True)
class CreatedClient:
    application: Application
    client_secret: str


def organization_create(*, name: str, tier: str = Tier.FREE) -> Organization:
    if tier not in Tier.values:
        raise ApplicationError(f"Unknown tier '{tier}'; choose one of {', '.join(Tier.values)}.")
    if not name.strip():
        raise ApplicationError("An organization needs a name.")
    return Organization.objects.create(name=name.strip(), tier=tier)


def validate_scopes(scopes: list[str]) -> list[str]:
    known: dict[str, str] = settings.OAUTH2_PROVIDER["SCOPES"]  # type: ignore[assignment]
    unknown = [scope for scope in scopes if scope not in known]
    if unknown:
        raise ApplicationError(f"Unknown scopes: {', '.join(unknown)}. Known: {', '.join(known)}.")
    if not scopes:
        raise ApplicationError("A client needs at least one scope.")
    return scopes


@transaction.atomic
def client_create(
    *,
    organization: Organization,
    name: str,
    scopes: list[str],
    grant: str = "client_credentials",
    redirect_uris: str = "",
) -> CreatedClient:
    """Creates an OAuth client; the plain secret is returned once and only its hash is stored."""
    if grant not in GRANT_TYPES:
        raise ApplicationError(f"Unknown grant '{grant}'; choose client_credentials, password or authorization-code.")
    grant_type = GRANT_TYPES[grant]
    if grant_type == Application.GRANT_AUTHORIZATION_CODE and not redirect_uris:
        raise ApplicationError("An authorization-code client needs --redirect-uris.")
    client_secret = secrets.token_urlsafe(36)
    application = Application(
        organization=organization,
        name=name,
        scopes=" ".join(validate_scopes(scopes)),
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant_type,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        algorithm="",
    )
    application.full_clean(exclude=["user", "client_secret"])
    application.save()
    return CreatedClient(application=application, client_secret=client_secret)


def user_create(*, organization: Organization, email: str, password: str, name: str = "") -> User:
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(f"A user with the email {email} exists already.")
    if len(password) < 8:
        raise ApplicationError("The password must have at least 8 characters.")
    return User.objects.create_user(email, password, organization=organization, name=name)
