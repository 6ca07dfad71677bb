import pytest
from django.test import Client


@pytest.mark.django_db
def test_health_is_healthy_when_database_and_broker_answer(client: Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "version": "1.0.0", "outbox": {"depth": 0, "lag_seconds": 0.0}}


@pytest.mark.django_db
def test_health_reports_the_outbox_lag(client: Client, organization) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from sapien.events.outbox import record_event
    from tests.support.events import events_backdate

    record_event(organization_id=organization.id, event_type="system.ping", data={})
    events_backdate(timezone.now() - timedelta(seconds=30))

    outbox = client.get("/health").json()["outbox"]

    assert outbox["depth"] == 1
    assert 29 <= outbox["lag_seconds"] < 40


@pytest.mark.django_db
def test_health_is_503_naming_the_broker_when_it_is_down(client: Client, settings) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["failing"] == ["broker"]


def test_schema_and_docs_are_published(client: Client, db) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/persons" in paths or "/api/persons/" in str(paths)
    assert client.get("/api/docs/").status_code == 200
