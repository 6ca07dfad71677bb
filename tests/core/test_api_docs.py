"""Swagger UI and ReDoc load only our own pinned assets, served by the web process: nothing from a CDN."""

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.fixture
def collected_static(settings, tmp_path: Path) -> Path:
    """The static files as ``make run`` and the Docker image have them: collected, then served by whitenoise."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    return Path(settings.STATIC_ROOT)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/api/docs/", ["swagger-ui-dist/favicon-32x32.png", "swagger-ui-dist/swagger-ui.css",
                        "swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui-standalone-preset.js"]),
        ("/api/redoc/", ["redoc/bundles/redoc.standalone.js"]),
    ],
)  # fmt: skip
def test_a_docs_page_loads_only_local_static_assets_and_each_is_served(
    collected_static: Path, page: str, expected: list[str]
) -> None:
    client = Client()

    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assert "http://" not in html
    assert "https://" not in html
    assets = ASSET.findall(html)
    assert assets == [f"/static/drf_spectacular_sidecar/{name}" for name in expected]
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert int(served["Content-Length"]) > 0
