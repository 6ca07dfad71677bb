"""Fixtures shared by the whole suite: organizations, real OAuth tokens, API clients.

And, for every test, name resolution that answers loopback only (``tests.support.loopback_dns``).
"""

import secrets
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

import sapien.celery  # noqa: F401 - the Celery app, as every process that publishes loads it (sapien/core/celery_app.py)
from sapien.core.models import Application, Organization, Tier, User

pytest_plugins = ["tests.support.loopback_dns", "tests.support.platform"]

ALL_SCOPES = (
    "events:subscribe events:read events:admin entities:read entities:write availability:read availability:write"
)


@pytest.fixture(scope="session", autouse=True)
def _straggler_recorder_let_go(django_db_setup):
    """The worker's straggler recorder keeps its database connection between records (``deliveries.dispatch``):
    in this process, it lets go of it before the test database is dropped (after this fixture)."""
    yield
    from deliveries.dispatch import senders

    senders.get().let_go()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _transaction_contracts_checked(settings):
    """Every test runs with the transaction contracts checked (``sapien.core.transactions``), as DEBUG does."""
    settings.ESL_ASSERT_TRANSACTIONS = True


@pytest.fixture
def make_organization(db) -> Callable[..., Organization]:
    def make(name: str = "Acme", tier: str = Tier.STANDARD) -> Organization:
        return Organization.objects.create(name=name, tier=tier)

    return make


@pytest.fixture
def organization(make_organization) -> Organization:
    return make_organization()


@pytest.fixture
def make_token(db) -> Callable[..., AccessToken]:
    """A real access token, as ``POST /oauth/token`` would have issued it."""

    def make(organization: Organization, scopes: str = ALL_SCOPES, user: User | None = None) -> AccessToken:
        application = Application.objects.create(
            organization=organization,
            name="test client",
            scopes=ALL_SCOPES,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        )
        return AccessToken.objects.create(
            application=application,
            user=user,
            token=secrets.token_urlsafe(30),
            scope=scopes,
            expires=timezone.now() + timedelta(hours=1),
        )

    return make


@pytest.fixture
def make_api(make_token) -> Callable[..., APIClient]:
    def make(organization: Organization, scopes: str = ALL_SCOPES, user: User | None = None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(organization, scopes, user).token}")
        return client

    return make


@pytest.fixture
def api(make_api, organization) -> APIClient:
    """An API client of ``organization`` holding every scope."""
    return make_api(organization)
