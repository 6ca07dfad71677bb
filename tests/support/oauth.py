"""OAuth clients made as an operator makes them (``sapien.core.services``), and the PKCE challenge of a verifier."""

import base64
import hashlib

from sapien.core.models import User
from sapien.core.services import CreatedClient, client_create, organization_create, user_create

REDIRECT_URI = "https://app.example.com/callback"


def authorization_code_client() -> tuple[User, CreatedClient]:
    """A web client of the authorization-code grant (its secret in clear, once) and a user who may approve it."""
    organization = organization_create(name="Acme")
    user = user_create(organization=organization, email="ada@example.com", password="correct-horse")
    created = client_create(
        organization=organization,
        name="web",
        scopes=["availability:read"],
        grant="authorization-code",
        redirect_uris=REDIRECT_URI,
    )
    return user, created


def s256(verifier: str) -> str:
    """The PKCE ``S256`` code challenge of ``verifier`` (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
