"""JSON logs with the correlation id and no secrets, maintenance notices. (/metrics: test_metrics.py.)"""

import json
import logging
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from deliveries.claims import claim_due, record_outcomes
from deliveries.relay import relay_pending
from sapien.core.context import bind_context, clear_context
from sapien.core.logging import CorrelationIdFilter, JsonFormatter
from sapien.core.models import Organization
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.claimed import send_claimed

pytestmark = pytest.mark.django_db


def test_log_lines_are_json_with_the_correlation_id() -> None:
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationIdFilter())
    logger = logging.getLogger("sapien.test")
    logger.addHandler(handler)
    bind_context(correlation_id="req-abc")
    try:
        logger.warning("delivery failed", extra={"delivery_id": "d1"})
    finally:
        clear_context()
        logger.removeHandler(handler)

    line = json.loads(stream.getvalue())
    assert line["message"] == "delivery failed"
    assert line["correlation_id"] == "req-abc"
    assert line["delivery_id"] == "d1"
    assert line["level"] == "WARNING"


def test_no_secret_reaches_the_logs_of_a_failing_delivery(organization, caplog) -> None:
    secret = "never-log-this-secret-123456"
    Subscription.objects.create(
        organization=organization, callback_url="http://127.0.0.1:9/closed", events=["*"], secret=secret
    )
    record_event(organization_id=organization.id, event_type="person.created", data={})
    relay_pending(batch_size=10)

    with caplog.at_level(logging.DEBUG):
        token = uuid.uuid4()
        record_outcomes(send_claimed(claim_due(batch_size=10, token=token)), token=token)

    assert caplog.records, "the failure should have produced log records to inspect"
    assert all(secret not in record.getMessage() and secret not in str(vars(record)) for record in caplog.records)
    assert any(getattr(record, "delivery_id", None) for record in caplog.records)


def test_the_maintenance_command_announces_to_every_organization(organization, make_organization) -> None:
    make_organization("Second")
    out = StringIO()

    call_command(
        "announce_maintenance", "--starts-at", "2026-12-01T02:00:00Z", "--ends-at", "2026-12-01T03:00:00Z",
        "--message", "Database upgrade", stdout=out,
    )  # fmt: skip

    assert json.loads(out.getvalue())["announced_to"] == Organization.objects.count() == 2
    notices = Event.objects.filter(type="system.maintenance.scheduled")
    assert notices.count() == 2
    notice = notices.first()
    assert notice is not None
    assert notice.payload["data"] == {
        "starts_at": "2026-12-01T02:00:00.000Z", "ends_at": "2026-12-01T03:00:00.000Z", "message": "Database upgrade",
    }  # fmt: skip


def test_the_admin_action_announces_maintenance(admin_client: Client, organization, make_organization) -> None:
    other = make_organization("Not chosen")
    form = admin_client.post(
        "/admin/core/organization/", {"action": "announce_maintenance", "_selected_action": [str(organization.id)]}
    )
    assert form.status_code == 200
    assert b"Announce" in form.content

    done = admin_client.post(
        "/admin/core/organization/",
        {"action": "announce_maintenance", "_selected_action": [str(organization.id)], "apply": "1",
         "starts_at": "2026-12-01 02:00", "ends_at": "2026-12-01 03:00", "message": "Upgrade"},
    )  # fmt: skip

    assert done.status_code == 302
    notices = Event.objects.filter(type="system.maintenance.scheduled")
    assert list(notices.values_list("organization_id", flat=True)) == [organization.id]
    assert not notices.filter(organization=other).exists()
    assert notices.get().payload["metadata"]["source"] == "admin"


def test_the_organization_admin_shows_quota_failing_subscriptions_and_oldest_undelivered(
    admin_client: Client, organization
) -> None:
    Subscription.objects.create(
        organization=organization, callback_url="https://h.example.com/", events=["*"], secret="s" * 20,
        consecutive_failures=4,
    )  # fmt: skip
    record_event(organization_id=organization.id, event_type="person.created", data={})
    relay_pending(batch_size=10)

    page = admin_client.get("/admin/core/organization/").content.decode()

    assert "1 / 10000" in page
    assert f"?organization__id__exact={organization.id}" in page
    assert "ago" in page
