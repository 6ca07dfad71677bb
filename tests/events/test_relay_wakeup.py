"""The outbox wakes the relay once per committed transaction that recorded events that may have a receiver, and
never for a rollback."""

import psycopg
import pytest
from django.db import transaction

from sapien.events.outbox import OUTBOX_CHANNEL, record_event
from subscriptions.models import Subscription
from tests.support.processes import database_url


@pytest.fixture
def listener(transactional_db):
    """A second session LISTENing on the outbox channel, as the relay does."""
    with psycopg.connect(database_url(), autocommit=True) as session:
        session.execute(f"LISTEN {OUTBOX_CHANNEL}")
        yield session


@pytest.fixture
def subscribed(organization) -> Subscription:
    return subscribe(organization)


def subscribe(organization, *, active: bool = True) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["person.*"], secret="s" * 20,
        active=active,
    )  # fmt: skip


def wake_ups(session: psycopg.Connection) -> int:
    return sum(1 for _ in session.notifies(timeout=0.3))


def record(organization_id, count: int, recipient_id=None) -> None:
    for _ in range(count):
        record_event(organization_id=organization_id, event_type="system.ping", data={}, recipient_id=recipient_id)


def test_three_events_in_one_transaction_wake_the_relay_once(listener, organization, subscribed) -> None:
    with transaction.atomic():
        record(organization.id, 3)

    assert wake_ups(listener) == 1


def test_a_rolled_back_transaction_wakes_nobody_and_the_next_commit_still_does(
    listener, organization, subscribed
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        record(organization.id, 2)
        raise RuntimeError("the change fails")
    assert wake_ups(listener) == 0

    with transaction.atomic():
        record(organization.id, 1)

    assert wake_ups(listener) == 1


def test_each_committed_transaction_wakes_the_relay(listener, organization, subscribed) -> None:
    for _ in range(3):
        with transaction.atomic():
            record(organization.id, 2)

    assert wake_ups(listener) == 3


def test_an_organization_without_an_active_subscription_wakes_nobody_until_it_subscribes(
    listener, organization
) -> None:
    subscribe(organization, active=False)  # of another type, and paused: neither makes a receiver

    with transaction.atomic():
        record(organization.id, 2)
    assert wake_ups(listener) == 0

    subscribe(organization)  # to other types: the relay decides what matches
    with transaction.atomic():
        record(organization.id, 1)
    assert wake_ups(listener) == 1


def test_an_event_addressed_to_a_subscription_wakes_the_relay_even_when_it_is_paused(listener, organization) -> None:
    paused = subscribe(organization, active=False)

    with transaction.atomic():
        record(organization.id, 1, recipient_id=paused.id)

    assert wake_ups(listener) == 1


def test_a_transaction_with_one_event_that_may_be_received_wakes_the_relay_once(
    listener, organization, make_organization
) -> None:
    subscribe(organization)
    unsubscribed = make_organization("Unsubscribed")

    with transaction.atomic():
        record(unsubscribed.id, 1)
        record(organization.id, 1)
        record(unsubscribed.id, 1)

    assert wake_ups(listener) == 1
