"""By default the server answers only to the hosts it serves: a forged Host header cannot rewrite its links."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from sapien.entities.models import Person

ROOT = Path(__file__).resolve().parents[2]


def allowed_hosts_by_default(**env: str) -> list[str]:
    """``ALLOWED_HOSTS`` as a fresh process reads it with the variable unset."""
    base = {key: value for key, value in os.environ.items() if key not in {"ALLOWED_HOSTS", "ESL_PUBLIC_URL"}}
    read = subprocess.run(
        [sys.executable, "-c", "import json; from sapien import settings; print(json.dumps(settings.ALLOWED_HOSTS))"],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return list(json.loads(read.stdout))


def test_the_default_is_loopback_and_the_public_url_s_host() -> None:
    assert allowed_hosts_by_default() == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts_by_default(ESL_PUBLIC_URL="http://localhost:8080") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts_by_default(ESL_PUBLIC_URL="https://sapien.example.com") == [
        "localhost", "127.0.0.1", "[::1]", "sapien.example.com"
    ]  # fmt: skip
    assert allowed_hosts_by_default(ESL_PUBLIC_URL="http://[2001:db8::5]:8080") == [
        "localhost", "127.0.0.1", "[::1]", "[2001:db8::5]"
    ]  # fmt: skip
    assert allowed_hosts_by_default(ALLOWED_HOSTS="sapien.example.com,.example.org") == [
        "sapien.example.com", ".example.org"
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_forged_host_is_refused_and_a_served_one_builds_the_links(api: APIClient, organization) -> None:
    Person.objects.bulk_create([Person(organization=organization, name=name) for name in ("Ada", "Grace")])

    forged = api.get("/api/persons?page_size=1", HTTP_HOST="attacker.example")
    served = api.get("/api/persons?page_size=1", HTTP_HOST="127.0.0.1:8080")

    assert forged.status_code == 400
    assert forged.json() == {"error": {"code": "bad_request", "message": "The request is malformed."}}
    assert served.status_code == 200
    assert served.json()["next"].startswith("http://127.0.0.1:8080/api/persons?cursor=")
    assert served.json()["next"].endswith("&page_size=1")
