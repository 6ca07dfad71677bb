"""The OAuth endpoints under hostile input: unstorable characters, guessing bursts, PKCE ``plain``."""

import base64
import hashlib
import logging
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
import pytest
import redis
import time_machine
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connection
from django.test import Client
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from sapien.core.models import Tier, TokenFailureCount
from sapien.core.oauth_guard import refused_character
from sapien.core.services import client_create, organization_create, user_create
from tests.support.oauth import REDIRECT_URI, authorization_code_client, s256

pytestmark = pytest.mark.django_db

WINDOW = 300


class CountingHasher(MD5PasswordHasher):
    """MD5, counting every hash it computes: checking a secret or a password costs one."""

    algorithm = "counting_md5"
    computed = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.computed += 1
        return super().encode(password, salt)


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PASSWORD_HASHERS = ["tests.core.test_oauth_hardening.CountingHasher"]
    settings.OAUTH_FAILED_ATTEMPTS_LIMIT = 3
    settings.OAUTH_FAILED_ATTEMPTS_ADDRESS_LIMIT = 100
    settings.OAUTH_FAILED_ATTEMPTS_WINDOW_SECONDS = WINDOW


def hashes_during(call: Any) -> tuple[Any, int]:
    before = CountingHasher.computed
    result = call()
    return result, CountingHasher.computed - before


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def post_token(client: Client, address: str = "127.0.0.1", **form: str) -> Any:
    return client.post("/oauth/token", form, REMOTE_ADDR=address)


def machine_client(name: str = "svc") -> tuple[str, str]:
    organization = organization_create(name="Acme", tier=Tier.STANDARD)
    created = client_create(organization=organization, name=name, scopes=["entities:read"])
    return created.application.client_id, created.client_secret


def first_party_client() -> tuple[str, str]:
    organization = organization_create(name="Acme")
    user_create(organization=organization, email="ada@example.com", password="correct-horse")
    user_create(organization=organization, email="bob@example.com", password="battery-staple")
    created = client_create(organization=organization, name="first-party", scopes=["entities:read"], grant="password")
    return created.application.client_id, created.client_secret


def nothing_written() -> bool:
    return (
        AccessToken.objects.count() == 0
        and RefreshToken.objects.count() == 0
        and Grant.objects.count() == 0
        and TokenFailureCount.objects.count() == 0
    )


# --- characters PostgreSQL cannot store ------------------------------------------------------------


@pytest.mark.parametrize("field", ["client_id", "client_secret", "username", "password", "scope"])
def test_a_nul_byte_in_a_token_request_field_is_an_invalid_request(client: Client, field: str) -> None:
    client_id, client_secret = first_party_client()
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "client_secret": client_secret,
        "username": "ada@example.com",
        "password": "correct-horse",
    }
    form[field] = form.get(field, "entities:read") + "\x00"

    response = post_token(client, **form)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"The {field} parameter holds a character that is not allowed (NUL).",
    }
    assert response["Cache-Control"] == "no-store"
    assert nothing_written()


@pytest.mark.parametrize(
    "credentials",
    [basic("svc\x00", "secret"), basic("svc%00", "secret"), basic("svc", "secret%00")],
    ids=["raw", "percent-encoded", "in-the-secret"],
)
def test_a_nul_byte_in_basic_client_credentials_is_an_invalid_request(client: Client, credentials: str) -> None:
    machine_client()

    response = client.post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=credentials)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The client credentials hold a character that is not allowed (NUL).",
    }
    assert nothing_written()


def test_a_nul_byte_in_a_parameter_name_is_an_invalid_request(client: Client) -> None:
    client_id, client_secret = machine_client()

    response = post_token(
        client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret, **{"x\x00": "1"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "A parameter name holds a character that is not allowed (NUL).",
    }


def test_an_over_long_parameter_is_an_invalid_request(client: Client) -> None:
    client_id, client_secret = first_party_client()

    response = post_token(
        client,
        grant_type="password",
        client_id=client_id,
        client_secret=client_secret,
        username="a" * 5000 + "@example.com",
        password="correct-horse",
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The username parameter is longer than 4096 characters.",
    }
    assert nothing_written()


def test_an_unpaired_surrogate_is_refused_and_cannot_arrive_through_the_form_encoding(client: Client) -> None:
    client_id, client_secret = machine_client()
    assert refused_character("svc\ud800") == "an unpaired surrogate"
    assert refused_character("svc\x00") == "NUL"
    assert refused_character("crème brûlée") is None

    # The percent-encoded UTF-8 of U+D800 is not UTF-8: Django decodes it as replacement characters.
    response = client.post(
        "/oauth/token",
        f"grant_type=client_credentials&client_id={client_id}%ED%A0%80&client_secret={client_secret}",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert AccessToken.objects.count() == 0


def test_the_device_grant_is_not_offered(client: Client) -> None:
    response = post_token(client, grant_type="urn:ietf:params:oauth:grant-type:device_code")

    assert response.status_code == 400
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "The device authorization grant is not offered.",
    }


def test_a_nul_byte_in_a_revocation_request_is_an_invalid_request(client: Client) -> None:
    client_id, client_secret = machine_client()

    response = client.post(
        "/oauth/revoke_token", {"token": "whatever", "client_id": client_id + "\x00", "client_secret": client_secret}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The client_id parameter holds a character that is not allowed (NUL).",
    }


def authorize_query(client_id: str, **overrides: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "availability:read",
        "code_challenge": s256(secrets.token_urlsafe(48)),
        "code_challenge_method": "S256",
        "state": "xyz",
        **overrides,
    }


def test_a_nul_byte_in_the_client_id_at_authorize_is_answered_as_an_unknown_client(client: Client) -> None:
    user, web = authorization_code_client()
    client.force_login(user)

    unknown = client.get("/oauth/authorize", authorize_query("no-such-client"))
    with_nul = client.get("/oauth/authorize", authorize_query(web.application.client_id + "\x00"))

    assert unknown.status_code == with_nul.status_code == 400
    assert with_nul.context["error"].error == unknown.context["error"].error == "invalid_request"
    assert with_nul.context["error"].description == unknown.context["error"].description
    assert with_nul.context["error"].description == "Invalid client_id parameter value."
    assert not with_nul.has_header("Location")  # a fatal error: never redirected


@pytest.mark.parametrize("field", ["state", "code_challenge", "redirect_uri"])
def test_a_nul_byte_in_another_authorize_parameter_is_a_fatal_invalid_request(client: Client, field: str) -> None:
    user, web = authorization_code_client()
    client.force_login(user)
    query = authorize_query(web.application.client_id)

    shown = client.get("/oauth/authorize", {**query, field: query[field] + "\x00"})
    approved = client.post("/oauth/authorize", {**query, field: query[field] + "\x00", "allow": "Authorize"})

    for response in (shown, approved):
        assert response.status_code == 400
        assert response.context["error"].error == "invalid_request"
        assert response.context["error"].description == (
            f"The {field} parameter holds a character that is not allowed (NUL)."
        )
        assert not response.has_header("Location")
    assert Grant.objects.count() == 0


# --- PKCE: S256 only -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["plain", None], ids=["plain", "absent (plain by default)"])
def test_pkce_plain_is_refused_at_authorize(client: Client, method: str | None) -> None:
    user, web = authorization_code_client()
    client.force_login(user)
    query = authorize_query(web.application.client_id, code_challenge="a" * 43)
    if method is None:
        del query["code_challenge_method"]
    else:
        query["code_challenge_method"] = method

    shown = client.get("/oauth/authorize", query)
    approved = client.post("/oauth/authorize", {**query, "allow": "Authorize"})

    for response in (shown, approved):
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        assert parse_qs(location.query) == {
            "error": ["invalid_request"],
            "error_description": ['The only code_challenge_method accepted is "S256".'],
            "state": ["xyz"],
        }
    assert Grant.objects.count() == 0


def test_pkce_s256_is_accepted_at_authorize(client: Client) -> None:
    user, web = authorization_code_client()
    client.force_login(user)
    query = authorize_query(web.application.client_id)

    shown = client.get("/oauth/authorize", query)
    approved = client.post("/oauth/authorize", {**query, "allow": "Authorize"})

    assert shown.status_code == 200
    assert approved.status_code == 302
    assert "code" in parse_qs(urlsplit(approved["Location"]).query)
    assert Grant.objects.get().code_challenge_method == "S256"


# --- throttling failed token requests ------------------------------------------------------------------


def assert_throttled(response: Any, retry_after: int) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == str(retry_after)
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "error": "slow_down",
        "error_description": f"Too many failed token requests; retry after {retry_after} seconds.",
    }


NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def test_past_the_limit_of_wrong_secrets_a_client_id_is_throttled_before_any_hashing(client: Client) -> None:
    client_id, client_secret = machine_client()
    other_id, other_secret = machine_client("other")
    with time_machine.travel(NOW, tick=False):
        wrong = [
            post_token(client, grant_type="client_credentials", client_id=client_id, client_secret="wrong").status_code
            for _ in range(3)
        ]

        throttled, hashed = hashes_during(
            lambda: post_token(
                client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret
            )
        )
        basic_auth, basic_hashed = hashes_during(
            lambda: client.post(
                "/oauth/token",
                {"grant_type": "client_credentials"},
                HTTP_AUTHORIZATION=basic(client_id, client_secret),
            )
        )
        other_client = post_token(
            client, grant_type="client_credentials", client_id=other_id, client_secret=other_secret
        )

    assert wrong == [401, 401, 401]
    assert_throttled(throttled, WINDOW)
    assert_throttled(basic_auth, WINDOW)
    assert hashed == basic_hashed == 0
    assert other_client.status_code == 200  # its own count, from the same address
    assert AccessToken.objects.get().application.client_id == other_id


def test_guesses_in_the_form_behind_another_clients_basic_header_count_against_the_guessed_client(
    client: Client,
) -> None:
    client_id, client_secret = machine_client()
    decoy = basic("decoy", "decoy")  # refused first; the toolkit then checks the form's credentials
    for _ in range(3):
        client.post(
            "/oauth/token",
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong"},
            HTTP_AUTHORIZATION=decoy,
        )

    throttled, hashed = hashes_during(
        lambda: post_token(client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret)
    )

    assert throttled.status_code == 429
    assert hashed == 0


def test_wrong_secrets_on_the_revocation_endpoint_count_too(client: Client) -> None:
    client_id, client_secret = machine_client()
    for _ in range(3):
        client.post("/oauth/revoke_token", {"token": "t", "client_id": client_id, "client_secret": "wrong"})

    revoked, hashed = hashes_during(
        lambda: client.post(
            "/oauth/revoke_token", {"token": "t", "client_id": client_id, "client_secret": client_secret}
        )
    )
    token = post_token(client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret)

    assert revoked.status_code == token.status_code == 429
    assert hashed == 0


def test_past_the_limit_of_wrong_passwords_a_username_is_throttled_but_not_the_client(client: Client) -> None:
    client_id, client_secret = first_party_client()

    def password_grant(username: str, password: str) -> Any:
        return post_token(
            client,
            grant_type="password",
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
        )

    wrong = [password_grant("ada@example.com", "guess").status_code for _ in range(2)]
    wrong.append(password_grant("ADA@example.com", "guess").status_code)  # the same user, whatever the case

    throttled, hashed = hashes_during(lambda: password_grant("ada@example.com", "correct-horse"))
    other_user = password_grant("bob@example.com", "battery-staple")

    assert wrong == [400, 400, 400]
    assert throttled.status_code == 429
    assert hashed == 0
    assert other_user.status_code == 200  # neither the client nor the address is throttled by one user's guesses


def test_past_the_address_limit_every_request_from_that_address_is_throttled(client: Client, settings) -> None:
    settings.OAUTH_FAILED_ATTEMPTS_ADDRESS_LIMIT = 3
    client_id, client_secret = machine_client()
    for guess in range(3):
        post_token(client, "127.0.0.7", grant_type="client_credentials", client_id=f"guess-{guess}", client_secret="x")

    same_address, hashed = hashes_during(
        lambda: post_token(
            client, "127.0.0.7", grant_type="client_credentials", client_id=client_id, client_secret=client_secret
        )
    )
    other_address = post_token(
        client, "127.0.0.8", grant_type="client_credentials", client_id=client_id, client_secret=client_secret
    )

    assert same_address.status_code == 429
    assert hashed == 0
    assert other_address.status_code == 200


def test_successful_requests_are_not_counted(client: Client) -> None:
    client_id, client_secret = machine_client()

    def attempt(secret: str) -> int:
        return int(
            post_token(client, grant_type="client_credentials", client_id=client_id, client_secret=secret).status_code
        )

    answers = [attempt("wrong"), attempt("wrong")] + [attempt(client_secret) for _ in range(5)] + [attempt("wrong")]

    assert answers == [401, 401, 200, 200, 200, 200, 200, 401]
    assert attempt(client_secret) == 429


def test_a_correct_request_works_again_once_the_window_has_passed(client: Client) -> None:
    client_id, client_secret = machine_client()
    with time_machine.travel(NOW, tick=False) as traveller:
        post_token(client, grant_type="client_credentials", client_id=client_id, client_secret="wrong")
        traveller.shift(timedelta(seconds=100))  # the window runs from the first failure
        for _ in range(2):
            post_token(client, grant_type="client_credentials", client_id=client_id, client_secret="wrong")
        throttled = post_token(
            client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret
        )

        traveller.shift(timedelta(seconds=WINDOW - 100 - 1))
        still = post_token(client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret)
        traveller.shift(timedelta(seconds=1))
        after = post_token(client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret)
        wrong_again = post_token(client, grant_type="client_credentials", client_id=client_id, client_secret="wrong")

    assert_throttled(throttled, WINDOW - 100)
    assert_throttled(still, 1)
    assert after.status_code == 200
    assert wrong_again.status_code == 401  # a new window: one failure of three
    assert TokenFailureCount.objects.get(key__startswith="client_id:").count == 1


def test_the_next_failure_deletes_the_counts_of_ended_windows(client: Client) -> None:
    first_id, _ = machine_client("first")
    second_id, _ = machine_client("second")
    with time_machine.travel(NOW, tick=False) as traveller:
        post_token(client, "127.0.0.5", grant_type="client_credentials", client_id=first_id, client_secret="wrong")
        traveller.shift(timedelta(seconds=WINDOW))
        post_token(client, "127.0.0.6", grant_type="client_credentials", client_id=second_id, client_secret="wrong")

    counted = {
        "client_id:" + hashlib.sha256(second_id.encode()).hexdigest(),
        "address:" + hashlib.sha256(b"127.0.0.6").hexdigest(),
    }
    rows = TokenFailureCount.objects.values_list("key", "count", "expires_at")
    assert set(rows) == {(key, 1, NOW + timedelta(seconds=2 * WINDOW)) for key in counted}


def test_a_throttled_attempt_is_logged_without_any_credential(client: Client, caplog) -> None:
    client_id, client_secret = first_party_client()
    form = {"grant_type": "password", "client_id": client_id, "client_secret": client_secret}
    for _ in range(3):
        post_token(client, **form, username="ada@example.com", password="guess-one")

    with caplog.at_level(logging.WARNING, logger="sapien.core.oauth_throttle"):
        post_token(client, **form, username="ada@example.com", password="correct-horse")

    [record] = [r for r in caplog.records if r.name == "sapien.core.oauth_throttle"]
    assert record.getMessage() == "Token request throttled: too many failed attempts by username."
    assert record.throttled_by == ["username"]
    assert record.client_id == client_id
    assert record.remote_addr == "127.0.0.1"
    logged = repr(vars(record))
    for credential in (client_secret, "correct-horse", "guess-one", "ada@example.com"):
        assert credential not in logged


# --- where the counts live -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_without_redis_the_counts_live_in_postgresql_where_every_process_sees_them(client: Client) -> None:
    client_id, _ = machine_client()

    post_token(client, grant_type="client_credentials", client_id=client_id, client_secret="wrong")

    database = connection.settings_dict
    with psycopg.connect(
        dbname=database["NAME"],
        user=database["USER"],
        password=database["PASSWORD"],
        host=database["HOST"],
        port=database["PORT"],
    ) as other_process:
        counts = other_process.execute(
            f"SELECT key, count FROM {TokenFailureCount._meta.db_table} ORDER BY key"
        ).fetchall()
    client_key = "client_id:" + hashlib.sha256(client_id.encode()).hexdigest()
    address_key = "address:" + hashlib.sha256(b"127.0.0.1").hexdigest()
    assert counts == [(address_key, 1), (client_key, 1)]


@pytest.fixture
def redis_cache(settings) -> Any:
    """The default cache in the test run's Redis, under a prefix of its own; a second client of that Redis."""
    url = os.environ.get("ESL_BROKER_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
    prefix = f"oauth-test-{secrets.token_hex(8)}"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
    }
    independent = redis.Redis.from_url(url)
    yield independent, prefix
    for key in independent.scan_iter(f"{prefix}:*"):
        independent.delete(key)
    independent.close()


def test_with_redis_as_the_cache_the_counts_live_in_redis_where_every_process_sees_them(
    client: Client, redis_cache: Any
) -> None:
    client_id, client_secret = machine_client()
    with time_machine.travel(NOW, tick=False) as traveller:
        wrong = [
            post_token(client, grant_type="client_credentials", client_id=client_id, client_secret="wrong").status_code
            for _ in range(3)
        ]
        traveller.shift(timedelta(seconds=10))
        throttled, hashed = hashes_during(
            lambda: post_token(
                client, grant_type="client_credentials", client_id=client_id, client_secret=client_secret
            )
        )

    assert wrong == [401, 401, 401]
    assert_throttled(throttled, WINDOW - 10)
    assert hashed == 0
    independent, prefix = redis_cache
    client_digest = hashlib.sha256(client_id.encode()).hexdigest()
    [key] = independent.keys(f"{prefix}:*:client_id:{client_digest}")
    assert int(independent.get(key)) == 3
    assert 0 < independent.ttl(key) <= WINDOW
    assert TokenFailureCount.objects.count() == 0


def test_the_counted_keys_hold_no_credential_in_clear(client: Client) -> None:
    client_id, client_secret = first_party_client()

    post_token(
        client,
        grant_type="password",
        client_id=client_id,
        client_secret=client_secret,
        username="ada@example.com",
        password="guess",
    )

    keys = list(TokenFailureCount.objects.values_list("key", flat=True))
    assert [key.split(":")[0] for key in sorted(keys)] == ["address", "username"]
    assert not any("ada" in key or quote("ada@example.com") in key for key in keys)
