"""Recovery: replay by range, event history, automatic disabling and re-enabling, secret rotation."""

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deliveries.claims import claim_due, record_outcomes
from deliveries.models import Delivery, DeliveryStatus
from deliveries.outbound import build_request
from deliveries.relay import relay_pending
from deliveries.retry import Outcome
from deliveries.transport import DeliveryResult
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.claimed import claimed_subscription
from tests.support.events import events_backdate

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(organization):
    return Subscription.objects.create(
        organization=organization,
        callback_url="https://hooks.example.com/",
        events=["person.*"],
        secret="old-secret-0123456789",
    )


def events_at(organization, minutes_ago: list[int], event_type: str = "person.created") -> list[Event]:
    events = []
    for minutes in minutes_ago:
        event = record_event(organization_id=organization.id, event_type=event_type, data={"m": minutes})
        assert event is not None
        events_backdate(timezone.now() - timedelta(minutes=minutes), pk=event.pk)
        events.append(event)
    return events


def finish(status: str) -> None:
    """Runs one claim and records every claimed delivery with the given final state."""
    token = uuid.uuid4()
    now = timezone.now()
    batch = claim_due(batch_size=1000, token=token)
    code = 200 if status == DeliveryStatus.SUCCEEDED else 500
    result = DeliveryResult(started_at=now, duration_ms=1, status_code=code)
    outcomes = [Outcome(delivery=d, result=result, status=status, next_attempt_at=None, error="") for d in batch]
    record_outcomes(outcomes, token=token)


def test_replay_a_time_range_with_a_dry_run_first(api, organization, subscription) -> None:
    events_at(organization, [50, 40, 30, 20, 10])
    events_at(organization, [25], event_type="pet.created")  # not subscribed
    relay_pending(batch_size=100)
    finish(DeliveryStatus.SUCCEEDED)
    url = f"/api/v1/subscriptions/{subscription.id}/replay"
    since = (timezone.now() - timedelta(minutes=45)).isoformat()
    until = (timezone.now() - timedelta(minutes=15)).isoformat()

    dry = api.post(url, {"since": since, "until": until, "dry_run": True}, format="json")
    assert dry.status_code == 200
    assert dry.json()["events"] == 3
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == 0

    done = api.post(url, {"since": since, "until": until}, format="json")
    assert done.status_code == 202
    assert done.json()["events"] == 3
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING)
    assert sorted(json.loads(d.event.body)["data"]["m"] for d in pending) == [20, 30, 40]
    assert all(d.attempt_count == 0 for d in pending)


def test_replay_by_status_and_of_events_missed_while_disabled(api, organization, subscription) -> None:
    events_at(organization, [30, 20])
    relay_pending(batch_size=100)
    finish(DeliveryStatus.FAILED)
    Subscription.objects.filter(pk=subscription.pk).update(active=False)
    events_at(organization, [10])  # no delivery: the subscription was off
    relay_pending(batch_size=100)
    url = f"/api/v1/subscriptions/{subscription.id}/replay"
    since = (timezone.now() - timedelta(hours=1)).isoformat()

    failed_only = api.post(url, {"since": since, "status": "failed", "dry_run": True}, format="json").json()["events"]
    everything = api.post(url, {"since": since}, format="json").json()["events"]

    assert failed_only == 2
    assert everything == 3
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == 3


def test_replay_needs_events_admin_and_a_valid_range(make_api, organization, subscription) -> None:
    url = f"/api/v1/subscriptions/{subscription.id}/replay"
    now = timezone.now().isoformat()

    assert (
        make_api(organization, "events:subscribe events:read").post(url, {"since": now}, format="json").status_code
        == 403
    )
    admin = make_api(organization, "events:admin")
    assert admin.post(url, {"since": now, "until": now}, format="json").status_code == 400
    assert admin.post(url, {}, format="json").status_code == 400


def test_event_history_lists_filters_and_reads_within_retention(
    api, organization, make_organization, make_api, settings
) -> None:
    settings.ESL_RETENTION_HOURS = 24
    recent = events_at(organization, [5, 3])
    events_at(organization, [2], event_type="pet.created")
    events_at(organization, [60 * 25])  # beyond retention
    other = make_api(make_organization("Other"))

    listed = api.get("/api/v1/events").json()
    people = api.get("/api/v1/events", {"type": "person.created"}).json()
    one = api.get(f"/api/v1/events/{recent[0].id}").json()

    assert [e["type"] for e in listed["results"]] == ["pet.created", "person.created", "person.created"]
    assert [e["id"] for e in people["results"]] == [str(event.id) for event in recent[::-1]]
    assert one["payload"]["data"] == {"m": 5}
    assert other.get(f"/api/v1/events/{recent[0].id}").status_code == 404
    assert other.get("/api/v1/events").json()["results"] == []


def test_consecutive_failures_over_the_period_disable_the_subscription(organization, subscription, settings) -> None:
    settings.ESL_DISABLE_AFTER_FAILURES = 3
    settings.ESL_DISABLE_AFTER_SECONDS = 600
    watcher = Subscription.objects.create(
        organization=organization, callback_url="https://ops.example.com/", events=["system.*"], secret="w" * 20
    )
    events_at(organization, [9, 8, 7])
    relay_pending(batch_size=100)
    finish(DeliveryStatus.FAILED)
    subscription.refresh_from_db()
    assert subscription.active is True  # three failures, but not yet failing for 10 minutes
    assert subscription.consecutive_failures == 3

    Subscription.objects.filter(pk=subscription.pk).update(failing_since=timezone.now() - timedelta(minutes=11))
    events_at(organization, [1])
    relay_pending(batch_size=100)
    finish(DeliveryStatus.FAILED)

    subscription.refresh_from_db()
    assert subscription.active is False
    assert "4 consecutive failed deliveries" in subscription.disabled_reason
    (notice,) = Event.objects.filter(type="system.subscription.disabled")
    assert notice.payload["data"]["subscription_id"] == str(subscription.id)
    relay_pending(batch_size=100)
    assert list(Delivery.objects.filter(event=notice).values_list("subscription_id", flat=True)) == [watcher.id]


def test_a_success_resets_the_failure_count(organization, subscription) -> None:
    events_at(organization, [3])
    relay_pending(batch_size=100)
    finish(DeliveryStatus.FAILED)
    events_at(organization, [1])
    relay_pending(batch_size=100)
    finish(DeliveryStatus.SUCCEEDED)

    subscription.refresh_from_db()
    assert (subscription.consecutive_failures, subscription.failing_since) == (0, None)


def test_re_enabling_offers_to_replay_what_was_missed(api, organization, subscription) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(
        active=False, disabled_at=timezone.now() - timedelta(minutes=30), disabled_reason="Disabled after failures."
    )
    events_at(organization, [20, 10])
    events_at(organization, [40])  # before it was disabled

    answer = api.patch(f"/api/v1/subscriptions/{subscription.id}", {"active": True}, format="json").json()

    assert answer["active"] is True
    assert answer["disabled_reason"] == ""
    assert answer["missed_while_disabled"]["events"] == 2
    assert answer["missed_while_disabled"]["replay"] == f"/api/v1/subscriptions/{subscription.id}/replay"


def test_what_was_missed_counts_from_the_first_failure_not_from_the_disabling(api, organization, subscription) -> None:
    first_failure = timezone.now() - timedelta(minutes=50)
    Subscription.objects.filter(pk=subscription.pk).update(
        active=False, failing_since=first_failure, disabled_at=timezone.now() - timedelta(minutes=30),
        disabled_reason="Disabled after failures.",
    )  # fmt: skip
    events_at(organization, [45, 20])  # failing, then disabled
    events_at(organization, [55])  # before the first failure

    missed = api.patch(f"/api/v1/subscriptions/{subscription.id}", {"active": True}, format="json").json()[
        "missed_while_disabled"
    ]

    assert missed["events"] == 2
    assert datetime.fromisoformat(missed["since"].replace("Z", "+00:00")) == first_failure


def test_rotation_signs_with_both_secrets_during_the_grace_period_then_only_the_new(
    api, organization, subscription, settings
) -> None:
    settings.ESL_SECRET_ROTATION_GRACE_SECONDS = 3600
    rotated = api.post(f"/api/v1/subscriptions/{subscription.id}/rotate-secret", {}, format="json").json()
    new_secret = rotated["secret"]
    event = events_at(organization, [0])[0]
    relay_pending(batch_size=10)
    (claimed,) = claim_due(batch_size=10, token=uuid.uuid4())

    request = build_request(claimed, event.body.encode())
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert Webhook(new_secret.encode()).verify(request.body, request.headers)
    assert Webhook(b"old-secret-0123456789").verify(request.body, request.headers)
    assert "secret" not in api.get(f"/api/v1/subscriptions/{subscription.id}").json()

    Subscription.objects.filter(pk=subscription.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    claimed_after = replace(claimed, subscription=claimed_subscription(Subscription.objects.get(pk=subscription.pk)))
    after = build_request(claimed_after, event.body.encode())
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new_secret.encode()).verify(after.body, after.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(b"old-secret-0123456789").verify(after.body, after.headers)
