"""The transaction contracts hold when broken on purpose: each breach raises and changes nothing."""

import pytest
from django.db import transaction

from availability.state import locked_state
from deliveries.dispatch import send_due_deliveries
from sapien.core.models import User
from sapien.core.transactions import TransactionContractError
from sapien.events.models import Event
from sapien.events.outbox import record_event


@pytest.mark.django_db(transaction=True)
def test_recording_an_event_outside_a_transaction_is_refused_and_records_nothing(organization) -> None:
    with pytest.raises(TransactionContractError, match="record_event must run inside a transaction"):
        record_event(organization_id=organization.id, event_type="system.ping", data={})

    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_recording_an_event_inside_a_transaction_commits_it(organization) -> None:
    with transaction.atomic():
        record_event(organization_id=organization.id, event_type="system.ping", data={})

    assert Event.objects.filter(type="system.ping").count() == 1


@pytest.mark.django_db(transaction=True)
def test_locking_a_users_availability_outside_a_transaction_is_refused(organization) -> None:
    user = User.objects.create_user(email="ada@example.com", password="secret-password", organization=organization)

    with pytest.raises(TransactionContractError, match="locked_state must run inside a transaction"):
        locked_state(user)


@pytest.mark.django_db
def test_sending_due_deliveries_inside_a_transaction_is_refused() -> None:
    with pytest.raises(TransactionContractError, match="send_due_deliveries must not run inside a transaction"):
        with transaction.atomic():
            send_due_deliveries(batch_size=10, max_seconds=1)


@pytest.mark.django_db
def test_the_atomic_block_a_test_wraps_around_itself_is_not_the_callers_transaction() -> None:
    run = send_due_deliveries(batch_size=10, max_seconds=1)

    assert run.handled == 0


@pytest.mark.django_db(transaction=True)
def test_with_the_checks_off_nothing_is_asserted(organization, settings) -> None:
    settings.ESL_ASSERT_TRANSACTIONS = False

    record_event(organization_id=organization.id, event_type="system.ping", data={})  # autocommitted

    assert Event.objects.filter(type="system.ping").count() == 1
