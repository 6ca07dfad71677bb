"""A worker keeps claiming while sends are in flight: a slow receiver holds only its own deliveries."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from deliveries import dispatch, transport
from deliveries.models import Delivery, DeliveryStatus
from deliveries.relay import relay_pending
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.receiver import ReceivedRequest, Receiver, Reply


@pytest.fixture
def loopback_callbacks(e2e_settings):
    transport._connections.reset()  # the connections are made for the current setting
    yield e2e_settings
    transport._connections.reset()


def wait_until_none_pending(timeout: float = 10.0) -> None:
    """Until every delivery has its outcome (a straggler's is recorded after its task returned)."""
    deadline = time.monotonic() + timeout
    while Delivery.objects.filter(status=DeliveryStatus.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)  # now() must move on, and stragglers are recorded on their own connection
def test_a_slow_receiver_does_not_hold_back_deliveries_due_after_it(organization, loopback_callbacks) -> None:
    """The slow receiver answers only once the second event reached the fast one: if the first task waited
    for it (or the worker were held until it answered), the second event could not be sent before its 10 s."""
    second_reached_fast = threading.Event()
    released_early: list[bool] = []
    second_event_id: list[str] = []

    def respond(request: ReceivedRequest) -> Reply:
        if request.path == "/hooks/slow" and request.header("webhook-id") not in second_event_id:
            released_early.append(second_reached_fast.wait(10))
        elif request.path == "/hooks/fast" and request.header("webhook-id") in second_event_id:
            second_reached_fast.set()
        return 200, {}, b"ok"

    receiver = Receiver(responder=respond)
    try:
        for path in ("/slow", "/fast"):
            Subscription.objects.create(
                organization=organization, callback_url=f"{receiver.url}{path}", events=["person.*"], secret="s" * 20
            )
        with transaction.atomic():
            record_event(organization_id=organization.id, event_type="person.created", data={})
            second = record_event(organization_id=organization.id, event_type="person.updated", data={})
        assert second is not None
        second_event_id.append(str(second.id))
        relay_pending(batch_size=100)
        due_later = timezone.now() + timedelta(seconds=0.5)
        Delivery.objects.filter(event_id=second.id).update(next_attempt_at=due_later)

        first = dispatch.send_due_deliveries(batch_size=50, max_seconds=30)  # returns with the slow send in flight
        while timezone.now() < due_later:
            time.sleep(0.05)
        second_run = dispatch.send_due_deliveries(batch_size=50, max_seconds=30)  # the next wake-up
        wait_until_none_pending()
    finally:
        second_reached_fast.set()
        receiver.close()

    assert (first.handled, second_run.handled) == (2, 2)
    assert released_early == [True]
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


@pytest.mark.django_db(transaction=True)  # the straggler recorder records on a connection of its own
def test_a_task_leaves_a_slow_send_to_the_straggler_recorder_and_its_outcome_is_still_recorded(
    organization, loopback_callbacks, monkeypatch
) -> None:
    monkeypatch.setattr(dispatch, "STRAGGLER_SECONDS", 0.2)
    answer = threading.Event()
    receiver = Receiver(responder=lambda request: (answer.wait(10), (200, {}, b"ok"))[1])
    try:
        Subscription.objects.create(
            organization=organization, callback_url=f"{receiver.url}/slow", events=["person.*"], secret="s" * 20
        )
        with transaction.atomic():
            record_event(organization_id=organization.id, event_type="person.created", data={})
        relay_pending(batch_size=100)

        run = dispatch.send_due_deliveries(batch_size=50, max_seconds=30)  # returns while the receiver still waits

        delivery = Delivery.objects.get()
        assert run.handled == 1 and not run.time_up and not answer.is_set()
        assert delivery.status == DeliveryStatus.PENDING and delivery.claim_token is not None
        answer.set()
        deadline = time.monotonic() + 10
        while delivery.status == DeliveryStatus.PENDING and time.monotonic() < deadline:
            time.sleep(0.05)
            delivery.refresh_from_db()
    finally:
        answer.set()
        receiver.close()

    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts.get().status_code == 200


@pytest.mark.django_db(transaction=True)  # the straggler recorder records on a connection of its own
def test_a_task_records_the_sends_that_finished_together_and_leaves_a_later_one_without_waiting_out_its_time(
    organization, loopback_callbacks, monkeypatch
) -> None:
    """With the stragglers' wait far longer than the test, the task returns once the quick sends have finished
    and a quiet span followed: the slow receiver is still waiting, its delivery claimed, the quick ones recorded.
    (The span is widened so that the quick sends surely finish within one of each other on a busy machine.)"""
    monkeypatch.setattr(dispatch, "STRAGGLER_SECONDS", 60.0)
    monkeypatch.setattr(dispatch, "STRAGGLER_QUIET_SECONDS", 1.0)
    answer = threading.Event()
    answered: list[str] = []

    def respond(request: ReceivedRequest) -> Reply:
        if request.path == "/hooks/slow":
            answer.wait(30)
        answered.append(request.path)
        return 200, {}, b"ok"

    receiver = Receiver(responder=respond)
    try:
        for path in ("/slow", "/quick-1", "/quick-2"):
            Subscription.objects.create(
                organization=organization, callback_url=f"{receiver.url}{path}", events=["person.*"], secret="s" * 20
            )
        with transaction.atomic():
            record_event(organization_id=organization.id, event_type="person.created", data={})
        relay_pending(batch_size=100)

        run = dispatch.send_due_deliveries(batch_size=50, max_seconds=30)

        slow_answered = "/hooks/slow" in answered
        statuses = dict(Delivery.objects.values_list("subscription__callback_url", "status"))
        attempts = dict(Delivery.objects.annotate(n=Count("attempts")).values_list("subscription__callback_url", "n"))
        answer.set()
        wait_until_none_pending()
    finally:
        answer.set()
        receiver.close()

    assert run.handled == 3 and not slow_answered
    assert statuses == {
        f"{receiver.url}/slow": DeliveryStatus.PENDING,
        f"{receiver.url}/quick-1": DeliveryStatus.SUCCEEDED,
        f"{receiver.url}/quick-2": DeliveryStatus.SUCCEEDED,
    }
    assert attempts == {f"{receiver.url}/slow": 0, f"{receiver.url}/quick-1": 1, f"{receiver.url}/quick-2": 1}
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}  # the straggler too


@pytest.mark.django_db(transaction=True)  # the records commit, giving the cap's room back to the next claim
def test_a_worker_at_a_subscriptions_cap_keeps_claiming_as_its_own_sends_give_the_room_back(
    organization, loopback_callbacks
) -> None:
    receiver = Receiver()
    try:
        Subscription.objects.create(
            organization=organization, callback_url=f"{receiver.url}/capped", events=["person.*"], secret="s" * 20,
            max_in_flight=2,
        )  # fmt: skip
        with transaction.atomic():
            for _ in range(7):
                record_event(organization_id=organization.id, event_type="person.created", data={})
        relay_pending(batch_size=100)

        run = dispatch.send_due_deliveries(batch_size=50, max_seconds=30)  # one wake-up, two at a time

        assert run.handled == 7
        assert len(receiver.wait_for(7)) == 7
    finally:
        receiver.close()


@pytest.mark.django_db(transaction=True)  # a connection of another thread
def test_the_straggler_recorder_keeps_its_connection_between_records_and_closes_it_when_idle() -> None:
    """A connection opened for each record cost PostgreSQL more than the record itself."""
    kept: list[bool] = []

    def recorder() -> None:
        try:
            connection.ensure_connection()
            dispatch.record_stragglers({})
            kept.append(connection.connection is not None)
            dispatch.close_recorder_connection()
            kept.append(connection.connection is not None)
        finally:
            connection.close()

    thread = threading.Thread(target=recorder)
    thread.start()
    thread.join(10)

    assert kept == [True, False]
