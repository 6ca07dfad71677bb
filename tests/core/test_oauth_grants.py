"""Every grant of docs/api.md "Authentication", through the real token endpoint."""

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from sapien.core.models import Tier
from sapien.core.services import client_create, organization_create, user_create
from tests.support.oauth import REDIRECT_URI, authorization_code_client, s256

pytestmark = pytest.mark.django_db


def token_request(client: Client, **form: str) -> dict:
    response = client.post("/oauth/token", form)
    return {"status": response.status_code, **response.json()}


def test_client_credentials_grant_issues_a_token_with_the_clients_scopes(client: Client) -> None:
    organization = organization_create(name="Acme", tier=Tier.FREE)
    created = client_create(organization=organization, name="svc", scopes=["entities:read", "events:read"])

    answer = token_request(
        client,
        grant_type="client_credentials",
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )

    assert answer["status"] == 200
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600
    assert set(answer["scope"].split()) == {"entities:read", "events:read"}
    listed = client.get("/api/persons", HTTP_AUTHORIZATION=f"Bearer {answer['access_token']}")
    assert listed.status_code == 200


def test_a_client_cannot_obtain_a_scope_it_was_not_given(client: Client) -> None:
    organization = organization_create(name="Acme")
    created = client_create(organization=organization, name="svc", scopes=["entities:read"])

    answer = token_request(
        client,
        grant_type="client_credentials",
        client_id=created.application.client_id,
        client_secret=created.client_secret,
        scope="entities:write",
    )

    assert answer["status"] == 400
    assert answer["error"] == "invalid_scope"


def test_a_wrong_client_secret_gets_no_token(client: Client) -> None:
    organization = organization_create(name="Acme")
    created = client_create(organization=organization, name="svc", scopes=["entities:read"])

    answer = token_request(
        client, grant_type="client_credentials", client_id=created.application.client_id, client_secret="wrong"
    )

    assert answer["status"] == 401
    assert answer["error"] == "invalid_client"


def test_password_grant_issues_access_and_refresh_tokens_and_refresh_works(client: Client) -> None:
    organization = organization_create(name="Acme")
    user_create(organization=organization, email="ada@example.com", password="correct-horse")
    created = client_create(
        organization=organization, name="first-party", scopes=["availability:read", "entities:read"], grant="password"
    )

    answer = token_request(
        client,
        grant_type="password",
        username="ada@example.com",
        password="correct-horse",
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )
    assert answer["status"] == 200
    assert answer["refresh_token"]

    refreshed = token_request(
        client,
        grant_type="refresh_token",
        refresh_token=answer["refresh_token"],
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )
    assert refreshed["status"] == 200
    assert refreshed["access_token"] != answer["access_token"]


def test_password_grant_refuses_a_user_of_another_organization(client: Client) -> None:
    home, other = organization_create(name="Home"), organization_create(name="Other")
    user_create(organization=other, email="eve@example.com", password="correct-horse")
    created = client_create(organization=home, name="first-party", scopes=["entities:read"], grant="password")

    answer = token_request(
        client,
        grant_type="password",
        username="eve@example.com",
        password="correct-horse",
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )

    assert answer["status"] == 400
    assert answer["error"] == "invalid_grant"


def test_authorization_code_grant_with_pkce(client: Client) -> None:
    user, created = authorization_code_client()
    verifier = secrets.token_urlsafe(48)
    client.force_login(user)

    approval = client.post(
        "/oauth/authorize",
        {
            "client_id": created.application.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "availability:read",
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "state": "xyz",
            "allow": "Authorize",
        },
    )
    assert approval.status_code == 302
    code = parse_qs(urlsplit(approval["Location"]).query)["code"][0]

    client.logout()
    answer = token_request(
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )
    assert answer["status"] == 200
    assert answer["scope"] == "availability:read"
    assert answer["refresh_token"]

    wrong_verifier = token_request(
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier="not-the-verifier-" + verifier,
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )
    assert wrong_verifier["status"] == 400


def test_revoked_token_no_longer_works(client: Client) -> None:
    organization = organization_create(name="Acme")
    created = client_create(organization=organization, name="svc", scopes=["entities:read"])
    token = token_request(
        client,
        grant_type="client_credentials",
        client_id=created.application.client_id,
        client_secret=created.client_secret,
    )["access_token"]

    revoked = client.post(
        "/oauth/revoke_token",
        {"token": token, "client_id": created.application.client_id, "client_secret": created.client_secret},
    )

    assert revoked.status_code == 200
    assert client.get("/api/persons", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_a_user_signs_in_on_the_login_page_before_approving_a_client(client: Client) -> None:
    organization = organization_create(name="Acme")
    user_create(organization=organization, email="ada@example.com", password="correct-horse")
    authorize = "/oauth/authorize?client_id=x&response_type=code"

    redirected = client.get(authorize)
    assert redirected.status_code == 302
    assert redirected["Location"].startswith("/accounts/login/")
    page = client.get(redirected["Location"])
    assert page.status_code == 200
    signed_in = client.post(
        "/accounts/login/", {"username": "ada@example.com", "password": "correct-horse", "next": authorize}
    )

    assert signed_in.status_code == 302
    assert signed_in["Location"] == authorize


def test_an_invalid_token_is_reported_as_such(client: Client) -> None:
    response = client.get("/api/persons", HTTP_AUTHORIZATION="Bearer expired-or-made-up")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
