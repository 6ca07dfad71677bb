"""Which middleware a request goes through: sessions, sign-in and messages for browser pages only.

An API request carries a bearer token and no cookie: it skips them, and keeps the security headers and
the CSRF check every request gets.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from sapien.core.models import User

pytestmark = pytest.mark.django_db
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.mark.parametrize("path", ["/api/persons", "/api/v1/events", "/health", "/api/nowhere"])
def test_a_request_of_a_program_has_no_session_signed_in_user_or_messages(api: APIClient, path: str) -> None:
    api.cookies["sessionid"] = "whatever"

    response = api.get(path)

    request = response.wsgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert "Set-Cookie" not in response
    assert "Cookie" not in response.get("Vary", "")


def test_an_api_response_keeps_the_security_headers(api: APIClient) -> None:
    response = api.get("/api/persons")

    assert response.status_code == 200
    assert {name: response[name] for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_the_admin_still_signs_in_with_a_session_and_a_csrf_check(organization) -> None:
    User.objects.create_superuser("root@example.com", "correct-horse")
    client = Client(enforce_csrf_checks=True)
    form = {"username": "root@example.com", "password": "correct-horse", "next": "/admin/"}

    assert client.post("/admin/login/", form).status_code == 403  # no CSRF token

    page = client.get("/admin/login/")
    signed_in = client.post("/admin/login/", {**form, "csrfmiddlewaretoken": page.cookies["csrftoken"].value})

    assert signed_in.status_code == 302
    assert {name: page[name] for name in SECURITY_HEADERS} == SECURITY_HEADERS
    admin = client.get("/admin/")
    assert admin.status_code == 200
    assert admin.wsgi_request.user.get_username() == "root@example.com"
