"""The hourly event quota: headers, the 80 % and 100 % notices once per window, deferral, never a drop."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from deliveries import claims
from deliveries.models import Delivery
from deliveries.relay import relay_pending
from sapien.core.models import Tier
from sapien.events.models import Event
from sapien.events.outbox import record_event
from sapien.events.quota import window_start
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_quota(settings):
    settings.RATE_LIMIT_EVENTS_HOUR = 5  # the standard tier's quota
    return 5


@pytest.fixture
def subscribed(organization):
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def record(organization, count: int, event_type: str = "person.created") -> list[Event]:
    events = []
    for n in range(count):
        event = record_event(organization_id=organization.id, event_type=event_type, data={"n": n})
        assert event is not None
        events.append(event)
    return events


def notices(kind: str) -> list[dict]:
    return [json.loads(e.body) for e in Event.objects.filter(type=f"system.rate_limit.{kind}")]


def test_every_api_response_carries_the_quota_headers(api, organization, small_quota) -> None:
    record(organization, 2)
    relay_pending(batch_size=100)

    response = api.get("/api/persons")

    assert response["X-RateLimit-Limit"] == "5"
    assert response["X-RateLimit-Remaining"] == "3"
    reset = int(response["X-RateLimit-Reset"])
    assert reset == int((window_start(timezone.now()) + timedelta(hours=1)).timestamp())
    assert api.get(f"/api/persons/{uuid.uuid4()}")["X-RateLimit-Limit"] == "5"  # errors too


@pytest.mark.parametrize(
    ("tier", "limit"), [(Tier.FREE, "1000"), (Tier.STANDARD, "10000"), (Tier.ENTERPRISE, "100000")]
)
def test_the_quota_follows_the_tier(make_organization, make_api, tier: str, limit: str) -> None:
    assert make_api(make_organization(tier=tier)).get("/api/persons")["X-RateLimit-Limit"] == limit


def test_warning_at_80_and_exceeded_at_100_percent_once_per_window(organization, subscribed, small_quota) -> None:
    record(organization, 3)
    relay_pending(batch_size=2)
    assert notices("warning") == []
    record(organization, 1)  # the 4th of 5: 80 %
    relay_pending(batch_size=2)
    assert len(notices("warning")) == 1
    record(organization, 4)  # past 100 %
    relay_pending(batch_size=2)
    record(organization, 3)
    relay_pending(batch_size=2)

    (warning,) = notices("warning")
    (exceeded,) = notices("exceeded")
    assert warning["data"]["threshold_percent"] == 80
    assert exceeded["data"]["limit"] == 5
    assert exceeded["data"]["deliveries_resume_at"] == exceeded["data"]["window_end"]
    assert exceeded["organization_id"] == str(organization.id)


def test_system_events_neither_count_nor_wait(organization, subscribed, small_quota) -> None:
    record(organization, 5)
    record(organization, 3, event_type="system.ping")
    relay_pending(batch_size=100)

    pings = Delivery.objects.filter(event__type="system.ping")
    assert pings.count() == 3
    assert all(d.next_attempt_at is not None and d.next_attempt_at <= timezone.now() for d in pings)


def test_past_the_quota_deliveries_wait_for_the_next_window_and_nothing_is_dropped(
    organization, subscribed, small_quota
) -> None:
    events = record(organization, 7)
    relay_pending(batch_size=100)

    deliveries = {d.event_id: d for d in Delivery.objects.all()}
    assert len(deliveries) == 7
    next_window = window_start(timezone.now()) + timedelta(hours=1)
    assert [deliveries[e.id].next_attempt_at == next_window for e in events] == [False] * 5 + [True] * 2
    claimed = claims.claim_due(batch_size=100, token=uuid.uuid4())
    assert {c.event.id for c in claimed} == {e.id for e in events[:5]}


def test_held_deliveries_are_sent_in_the_next_window(organization, subscribed, small_quota) -> None:
    an_hour_ago = datetime.now(tz=UTC) - timedelta(hours=1)
    with time_machine.travel(an_hour_ago, tick=False):
        events = record(organization, 7)  # all in the previous window: 2 over its quota
        relay_pending(batch_size=100)

    held = Delivery.objects.filter(event_id__in=[e.id for e in events[5:]])
    next_window = window_start(an_hour_ago) + timedelta(hours=1)
    # due from the window's turn
    assert all(d.next_attempt_at is not None and next_window <= d.next_attempt_at <= timezone.now() for d in held)
    claimed = claims.claim_due(batch_size=100, token=uuid.uuid4())
    assert {c.event.id for c in claimed} == {e.id for e in events}  # the window has turned: all seven are due
