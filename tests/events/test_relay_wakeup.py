"""The outbox wakes the relay once per committed transaction that recorded events, and never for a rollback."""

import psycopg
import pytest
from django.db import transaction

from sapien.events.outbox import OUTBOX_CHANNEL, record_event
from tests.support.processes import database_url


@pytest.fixture
def listener(transactional_db):
    """A second session LISTENing on the outbox channel, as the relay does."""
    with psycopg.connect(database_url(), autocommit=True) as session:
        session.execute(f"LISTEN {OUTBOX_CHANNEL}")
        yield session


def wake_ups(session: psycopg.Connection) -> int:
    return sum(1 for _ in session.notifies(timeout=0.3))


def record(organization_id, count: int) -> None:
    for _ in range(count):
        record_event(organization_id=organization_id, event_type="system.ping", data={})


def test_three_events_in_one_transaction_wake_the_relay_once(listener, organization) -> None:
    with transaction.atomic():
        record(organization.id, 3)

    assert wake_ups(listener) == 1


def test_a_rolled_back_transaction_wakes_nobody_and_the_next_commit_still_does(listener, organization) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        record(organization.id, 2)
        raise RuntimeError("the change fails")
    assert wake_ups(listener) == 0

    with transaction.atomic():
        record(organization.id, 1)

    assert wake_ups(listener) == 1


def test_each_committed_transaction_wakes_the_relay(listener, organization) -> None:
    for _ in range(3):
        with transaction.atomic():
            record(organization.id, 2)

    assert wake_ups(listener) == 3
