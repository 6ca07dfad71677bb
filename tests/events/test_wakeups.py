"""Wake-ups asked of the relay: a NOTIFY after the commit carrying a task the relay may publish, and nothing else.

The code that serves requests asks for its wake-ups this way, never through the broker: redeliveries, replays and
presence timers alike.
"""

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from celery import Celery
from django.db import transaction
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from sapien.events.outbox import record_event
from sapien.events.wakeups import (
    DELIVER_DUE,
    MAX_COUNT,
    RUN_TIMERS,
    WAKEUP_CHANNEL,
    WakeUp,
    wakeup_request,
    wakeups_merged,
)
from subscriptions.models import Subscription
from tests.support.processes import database_url


@pytest.fixture
def listener(transactional_db):
    """A second session LISTENing on the wake-up channel, as the relay does."""
    with psycopg.connect(database_url(), autocommit=True) as session:
        session.execute(f"LISTEN {WAKEUP_CHANNEL}")
        yield session


@pytest.fixture
def published(monkeypatch) -> list[str]:
    """Every task this process publishes through any Celery app (``apply_async`` ends in ``send_task``)."""
    sent: list[str] = []
    monkeypatch.setattr(Celery, "send_task", lambda app, name, *args, **kwargs: sent.append(name))
    return sent


def subscribe(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def heard(session: psycopg.Connection) -> list[WakeUp | None]:
    return [WakeUp.from_payload(notice.payload) for notice in session.notifies(timeout=0.3)]


def test_a_wake_up_travels_as_its_payload() -> None:
    at = datetime(2026, 12, 6, 10, 0, 0, 250000, tzinfo=UTC)

    for wakeup in (WakeUp(DELIVER_DUE), WakeUp(DELIVER_DUE, count=3), WakeUp(RUN_TIMERS, at=at)):
        assert WakeUp.from_payload(wakeup.payload()) == wakeup


@pytest.mark.parametrize(
    "payload",
    [
        "", "not json", "[]", '{"at": null}', '{"task": "deliveries.purge_expired"}', '{"task": 7}',
        '{"task": "deliveries.deliver_due", "count": 0}', '{"task": "deliveries.deliver_due", "count": true}',
        '{"task": "deliveries.deliver_due", "count": "2"}', '{"task": "availability.run_timers", "at": "tomorrow"}',
        '{"task": "availability.run_timers", "at": 5}',
    ],
)  # fmt: skip
def test_anything_but_a_request_for_a_known_task_is_ignored(payload: str) -> None:
    assert WakeUp.from_payload(payload) is None


def test_a_request_asks_for_at_most_a_hundred_copies() -> None:
    assert WakeUp.from_payload(json.dumps({"task": DELIVER_DUE, "count": 10**9})) == WakeUp(
        DELIVER_DUE, count=MAX_COUNT
    )


def test_what_was_heard_at_once_is_published_once_per_task_and_time() -> None:
    at = timezone.now()

    merged = wakeups_merged(
        [WakeUp(DELIVER_DUE), WakeUp(DELIVER_DUE, count=3), WakeUp(RUN_TIMERS, at=at), WakeUp(RUN_TIMERS, at=at)]
    )

    assert merged == [WakeUp(DELIVER_DUE, count=3), WakeUp(RUN_TIMERS, at=at)]


def test_a_request_is_a_notify_on_the_wakeup_channel(listener) -> None:
    wakeup_request(WakeUp(DELIVER_DUE, count=2))

    assert heard(listener) == [WakeUp(DELIVER_DUE, count=2)]


def test_a_redelivery_asks_the_relay_to_wake_a_worker_and_publishes_nothing(listener, published, api, organization):
    subscription = subscribe(organization)
    with transaction.atomic():
        event = record_event(organization_id=organization.id, event_type="person.created", data={})
    assert event is not None
    delivery = Delivery.objects.create(
        organization=organization, event=event, event_created_at=event.created_at, event_type=event.type,
        subscription=subscription, status=DeliveryStatus.FAILED,
    )  # fmt: skip
    heard(listener)

    answer = api.post(f"/api/v1/subscriptions/{subscription.id}/deliveries/{delivery.id}/redeliver")

    assert answer.status_code == 202
    assert heard(listener) == [WakeUp(DELIVER_DUE)]
    assert published == []


def test_a_replay_asks_for_a_worker_per_batch_it_filled_and_publishes_nothing(
    listener, published, api, organization, settings
) -> None:
    settings.ESL_DELIVERY_BATCH_SIZE = 2
    subscription = subscribe(organization)
    with transaction.atomic():
        for _ in range(5):
            record_event(organization_id=organization.id, event_type="person.created", data={})
    since = (timezone.now() - timedelta(minutes=1)).isoformat()

    answer = api.post(f"/api/v1/subscriptions/{subscription.id}/replay", {"since": since}, format="json")

    assert answer.status_code == 202, answer.content
    assert heard(listener) == [WakeUp(DELIVER_DUE, count=3)]
    assert published == []


def test_a_status_change_asks_for_the_timers_at_its_event_time_and_publishes_nothing(
    listener, published, make_api, organization
) -> None:
    from sapien.core.models import User

    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    me = make_api(organization, "availability:read availability:write", user=user)

    answer = me.put("/api/v1/availability/me", {"status": "busy"}, format="json")

    assert answer.status_code == 200
    (wakeup,) = heard(listener)
    assert wakeup is not None and wakeup.task == RUN_TIMERS and wakeup.at is not None
    assert timezone.now() - timedelta(seconds=5) < wakeup.at < timezone.now() + timedelta(minutes=5)
    assert published == []
