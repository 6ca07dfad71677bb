"""Bearer tokens: only from the Authorization header, one query to check, the caller's organization fixed.

A token read is taken without a query for ``OAUTH_TOKEN_CACHE_SECONDS``: a revocation through another
process waits that long at most, one through this process not at all, and expiry is never late.
"""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Empty, Request
from rest_framework.test import APIClient, APIRequestFactory

from sapien.core.auth import OrganizationTokenAuthentication, RecentTokens, recent_tokens
from sapien.core.models import Tier, User
from sapien.core.services import client_create
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


@pytest.fixture
def clock(monkeypatch, settings) -> list[float]:
    """The token cache's clock, moved by hand (``clock[0]`` seconds), with the longest bound allowed."""
    settings.OAUTH_TOKEN_CACHE_SECONDS = 5
    now = [1000.0]
    monkeypatch.setattr(recent_tokens, "clock", lambda: now[0])
    return now


def authenticate(token: str) -> tuple[Any, Any] | None:
    request = Request(APIRequestFactory().get("/api/persons", HTTP_AUTHORIZATION=f"Bearer {token}"))
    return OrganizationTokenAuthentication().authenticate(request)


def test_a_token_read_is_taken_without_a_query_until_the_bound_has_passed(
    organization, make_token, clock, django_assert_num_queries
) -> None:
    token = make_token(organization)
    with django_assert_num_queries(1):
        assert authenticate(token.token) == (None, token)

    clock[0] += 4.99
    with django_assert_num_queries(0):
        assert authenticate(token.token) == (None, token)
    clock[0] += 0.01
    with django_assert_num_queries(1):
        assert authenticate(token.token) == (None, token)


def test_a_token_revoked_through_another_process_is_refused_once_the_bound_has_passed(
    organization, make_token, clock
) -> None:
    token = make_token(organization)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.token}")
    assert api.get("/api/persons").status_code == 200
    with connection.cursor() as cursor:  # as another process's revocation looks from here: no signal
        cursor.execute("DELETE FROM oauth2_provider_accesstoken WHERE id = %s", [token.pk])

    clock[0] += 4.99
    assert api.get("/api/persons").status_code == 200  # the documented delay
    clock[0] += 0.01
    refused = api.get("/api/persons")

    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "The access token is invalid, expired or revoked."


def test_a_token_revoked_through_this_process_is_refused_at_once(organization, clock) -> None:
    created = client_create(organization=organization, name="svc", scopes=["entities:read"])
    credentials = {"client_id": created.application.client_id, "client_secret": created.client_secret}
    client = Client()
    token = client.post("/oauth/token", {"grant_type": "client_credentials", **credentials}).json()["access_token"]
    assert client.get("/api/persons", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    assert client.post("/oauth/revoke_token", {"token": token, **credentials}).status_code == 200

    assert client.get("/api/persons", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_a_token_taken_without_a_query_is_refused_the_moment_it_expires(
    organization, make_token, clock, django_assert_num_queries
) -> None:
    token = make_token(organization)
    authenticate(token.token)

    with time_machine.travel(token.expires - timedelta(microseconds=1), tick=False):
        assert authenticate(token.token) == (None, token)
    with time_machine.travel(token.expires, tick=False), django_assert_num_queries(0):
        with pytest.raises(exceptions.AuthenticationFailed, match="invalid, expired or revoked"):
            authenticate(token.token)


def test_with_a_bound_of_zero_every_request_reads_its_token(
    organization, make_token, settings, django_assert_num_queries
) -> None:
    settings.OAUTH_TOKEN_CACHE_SECONDS = 0
    token = make_token(organization)

    for _ in range(3):
        with django_assert_num_queries(1):
            authenticate(token.token)


def test_a_change_of_organization_in_this_process_is_seen_at_once(organization, make_api, clock) -> None:
    organization.tier = Tier.FREE
    organization.save()
    api = make_api(organization)
    assert api.get("/api/persons")["X-RateLimit-Limit"] == "1000"

    organization.tier = Tier.ENTERPRISE
    organization.save()

    assert api.get("/api/persons")["X-RateLimit-Limit"] == "100000"


def test_the_cache_holds_a_bounded_number_of_tokens_and_drops_the_oldest(
    organization, make_token, monkeypatch, settings
) -> None:
    settings.OAUTH_TOKEN_CACHE_SECONDS = 5
    monkeypatch.setattr(RecentTokens, "MAX_TOKENS", 2)
    cache = RecentTokens()
    first, second, third = (make_token(organization) for _ in range(3))

    for token in (first, second, third):
        cache.put(token.token_checksum, token, read_at=cache.clock())

    assert [cache.get(token.token_checksum) for token in (first, second, third)] == [None, second, third]


@pytest.mark.parametrize(("value", "starts"), [("5s", True), ("5001ms", False), ("1m", False)])
def test_the_revocation_delay_is_bounded_at_five_seconds(value: str, starts: bool) -> None:
    root = Path(__file__).resolve().parents[2]
    read = subprocess.run(
        [sys.executable, "-c", "import sapien.settings as s; print(s.OAUTH_TOKEN_CACHE_SECONDS)"],
        cwd=root, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root),
        "OAUTH_TOKEN_CACHE": value},
    )  # fmt: skip

    assert (read.returncode == 0) is starts
    assert read.stdout.strip() == ("5.0" if starts else "")
    assert starts or "revocation may wait 5 s at most" in read.stderr
