"""Bearer tokens: only from the Authorization header, one query to check, the caller's organization fixed."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from rest_framework.request import Empty, Request
from rest_framework.test import APIClient, APIRequestFactory

from sapien.core.auth import OrganizationTokenAuthentication
from sapien.core.models import User
from sapien.entities.models import Person
from sapien.events.models import Event
from tests.support.database import all_rows

pytestmark = pytest.mark.django_db
IN_THE_HEADER = {
    "code": "token_in_url",
    "message": "Send the access token in the 'Authorization: Bearer <token>' header, never in the URL or the request body.",
}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/persons", None),
        ("post", "/api/persons", '{"name": "Ada"}'),
        ("get", "/api/v1/events", None),
        ("get", "/api/schema/", None),
    ],
)
def test_a_token_in_the_query_string_is_refused(
    organization, make_token, method: str, path: str, body: str | None
) -> None:
    token = make_token(organization).token
    before = all_rows()

    response = APIClient().generic(
        method.upper(), f"{path}?access_token={token}", body or "", content_type="application/json",
        HTTP_ACCEPT="application/json",
    )  # fmt: skip

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="sapien"'
    assert response.json()["error"] == IN_THE_HEADER
    assert all_rows() == before


def test_a_token_in_the_query_string_is_refused_even_beside_a_valid_header(organization, make_token) -> None:
    token = make_token(organization).token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.post(f"/api/persons?access_token={token}", {"name": "Ada"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"] == IN_THE_HEADER
    assert Person.objects.count() == 0
    assert Event.objects.count() == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "GET"])
def test_a_token_in_a_form_body_is_refused(organization, make_token, method: str) -> None:
    token = make_token(organization).token
    before = all_rows()

    response = APIClient().generic(
        method, "/api/persons", urlencode({"name": "Ada", "access_token": token}),
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip

    assert response.status_code == 401
    assert response.json()["error"] == IN_THE_HEADER
    assert all_rows() == before


def test_the_header_token_is_checked_in_one_query_without_reading_the_body(
    organization, make_token, django_assert_num_queries
) -> None:
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    token = make_token(organization, user=user)
    django_request = APIRequestFactory().post(
        "/api/persons", "[" * 10_000, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token.token}"
    )
    request = Request(django_request)

    # One query: the token by its unique checksum, with its client, organization and user joined.
    with django_assert_num_queries(1):
        authenticated = OrganizationTokenAuthentication().authenticate(request)

    assert authenticated == (user, token)
    # read through vars(): the attributes authentication sets are not in the stubs' Request
    assert vars(request)["organization"] == vars(django_request)["organization"] == organization
    assert vars(django_request)["user_token"] == token
    assert vars(request)["_data"] is Empty  # the body was never parsed


def test_a_client_token_acts_for_its_organization_with_no_user(organization, make_token) -> None:
    token = make_token(organization)
    django_request = APIRequestFactory().get("/api/persons", HTTP_AUTHORIZATION=f"Bearer {token.token}")
    request = Request(django_request)

    assert OrganizationTokenAuthentication().authenticate(request) == (None, token)
    assert vars(request)["organization"] == organization
    assert not hasattr(django_request, "user_token")


@pytest.mark.parametrize(
    "header",
    ["Bearer made-up", "Bearer", "Bearer two parts", "bearer made-up"],
)
def test_a_bad_bearer_header_is_401_with_a_challenge(db, header: str) -> None:
    response = APIClient().get("/api/persons", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="sapien"'
    assert response.json()["error"]["code"] == "authentication_failed"


def test_an_expired_token_is_refused(organization, make_token) -> None:
    token = make_token(organization)
    token.expires = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires"])

    response = APIClient().post(
        "/api/persons", {"name": "Ada"}, format="json", HTTP_AUTHORIZATION=f"Bearer {token.token}"
    )

    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "authentication_failed",
        "message": "The access token is invalid, expired or revoked.",
    }
    assert Person.objects.count() == 0


def test_no_credentials_is_401_not_authenticated(db) -> None:
    response = APIClient().get("/api/persons")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="sapien"'
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_token_without_the_scope_is_403(organization, make_api) -> None:
    reader = make_api(organization, "entities:read")

    assert reader.get("/api/persons").status_code == 200
    refused = reader.post("/api/persons", {"name": "Ada"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert Person.objects.count() == 0


def test_a_deactivated_users_token_works_until_it_expires_or_is_revoked(organization, make_api) -> None:
    # As with django-oauth-toolkit's own check: deactivation stops new tokens (the password grant
    # refuses the user), not the tokens already issued.
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization, is_active=False)
    api = make_api(organization, user=user)

    response = api.get("/api/v1/availability/me")

    assert response.status_code == 200
    assert response.json()["user_id"] == str(user.pk)
