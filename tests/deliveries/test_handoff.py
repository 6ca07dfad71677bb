"""Deliveries born claimed: the relay hands each batch to a worker, and nothing it hands over can be lost."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries import dispatch, handoff, tasks, transport
from deliveries.claims import claim_due, handed_deliveries
from deliveries.handoff import HandedBatch, claims_release, hand_to_workers
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.relay import relay_pending
from deliveries.senders import SenderPool
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.processes import wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.django_db


def subscribe(organization, url: str = "https://hooks.example.com/") -> Subscription:
    return Subscription.objects.create(organization=organization, callback_url=url, events=["*"], secret="s" * 20)


def record(organization, count: int) -> None:
    with transaction.atomic():
        for _ in range(count):
            record_event(organization_id=organization.id, event_type="person.created", data={})


def relay_handing() -> list[HandedBatch]:
    handed: list[HandedBatch] = []
    relay_pending(batch_size=500, hand_to=handed.extend)
    return handed


def lapse_leases() -> None:
    Delivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))


def test_deliveries_due_now_are_born_claimed_in_batches_of_the_delivery_batch_size(organization, settings) -> None:
    settings.ESL_DELIVERY_BATCH_SIZE = 4
    subscribe(organization)
    subscribe(organization)
    record(organization, 5)

    handed = relay_handing()

    assert sorted(len(batch.ids) for batch in handed) == [2, 4, 4]
    assert len({batch.token for batch in handed}) == 3
    for batch in handed:
        rows = Delivery.objects.filter(id__in=batch.ids)
        assert {(d.claim_token, d.attempt_count, d.status) for d in rows} == {(batch.token, 1, DeliveryStatus.PENDING)}
        assert all(d.claimed_until is not None and d.claimed_until > timezone.now() for d in rows)
        times = [d.event_created_at for d in rows]
        assert batch.since == min(times) and batch.until == max(times)
    assert claim_due(batch_size=100, token=handed[0].token) == []  # nobody else can take them


def test_without_a_hand_over_deliveries_are_born_pending_for_any_claim(organization) -> None:
    subscribe(organization)
    record(organization, 3)

    relay_pending(batch_size=500)

    assert set(Delivery.objects.values_list("claim_token", "attempt_count")) == {(None, 0)}


def test_deliveries_past_the_quota_are_not_handed_over(organization, settings) -> None:
    settings.RATE_LIMIT_EVENTS_HOUR = 2  # the standard tier's quota
    subscribe(organization)
    record(organization, 3)

    (batch,) = relay_handing()

    assert len(batch.ids) == 2
    waiting = Delivery.objects.exclude(id__in=batch.ids).get()
    assert (waiting.claim_token, waiting.attempt_count) == (None, 0)
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > timezone.now()


def test_a_handed_batch_is_read_only_while_its_claim_holds_then_the_sweep_takes_it(organization) -> None:
    subscribe(organization)
    record(organization, 3)
    (batch,) = relay_handing()  # and the message is lost

    read = handed_deliveries(token=batch.token, ids=batch.ids, since=batch.since, until=batch.until)
    assert sorted(d.id for d in read) == sorted(batch.ids) and {d.attempt for d in read} == {1}

    lapse_leases()
    assert handed_deliveries(token=batch.token, ids=batch.ids, since=batch.since, until=batch.until) == []
    retaken = claim_due(batch_size=100, token=uuid.uuid4())
    assert sorted(d.id for d in retaken) == sorted(batch.ids) and {d.attempt for d in retaken} == {2}


def test_a_released_claim_is_due_at_once_with_its_attempt_uncounted(organization) -> None:
    subscribe(organization)
    record(organization, 2)
    (batch,) = relay_handing()

    claims_release([batch])

    assert set(Delivery.objects.values_list("claim_token", "claimed_until", "attempt_count")) == {(None, None, 0)}
    assert len(claim_due(batch_size=100, token=batch.token)) == 2


def test_a_batch_the_broker_refuses_is_released(organization, monkeypatch) -> None:
    subscribe(organization)
    record(organization, 2)
    (batch,) = relay_handing()

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.deliver_claimed, "apply_async", refuse)
    hand_to_workers([batch])

    assert set(Delivery.objects.values_list("claim_token", "attempt_count")) == {(None, 0)}


def test_a_batch_is_published_with_a_short_summary_of_its_arguments(organization, monkeypatch) -> None:
    subscribe(organization)
    record(organization, 3)
    (batch,) = relay_handing()
    published: list[dict] = []
    monkeypatch.setattr(tasks.deliver_claimed, "apply_async", lambda **options: published.append(options))

    hand_to_workers([batch])

    (options,) = published
    assert options["kwargs"] == batch.message()
    assert options["kwargsrepr"] == f"{{'token': '{batch.token}', 'deliveries': 3}}"  # not Celery's repr of every id
    assert options["argsrepr"] == "()"


def test_the_handed_message_carries_primitives_and_reads_back_equal(organization) -> None:
    subscribe(organization)
    record(organization, 2)
    (batch,) = relay_handing()

    message = batch.message()

    assert all(isinstance(value, str | list) for value in message.values())
    assert HandedBatch.from_message(**message) == batch


@pytest.mark.django_db(transaction=True)  # stragglers are recorded on their own connection
def test_a_worker_sends_a_handed_batch_with_one_read_and_no_claim(
    organization, e2e_settings, django_assert_max_num_queries
) -> None:
    transport._connections.reset()
    receiver = Receiver()
    try:
        subscribe(organization, f"{receiver.url}/hooks")
        record(organization, 3)
        (batch,) = relay_handing()

        with django_assert_max_num_queries(1 + 4) as queries:  # the read; the record (attempts, states, health)
            run = dispatch.send_due_deliveries(batch_size=50, max_seconds=10, handed=batch)

        assert run.handled == 3
        assert "claimed AS (\n    SELECT" in queries.captured_queries[0]["sql"]  # read, not claimed
        assert not any("SKIP LOCKED" in query["sql"] for query in queries.captured_queries)
        assert len(receiver.wait_for(3)) == 3
        wait_until(lambda: not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists(), message="recorded")
        assert set(Delivery.objects.values_list("status", "attempt_count")) == {(DeliveryStatus.SUCCEEDED, 1)}
        assert DeliveryAttempt.objects.count() == 3
    finally:
        receiver.close()
        transport._connections.reset()


def test_the_lease_a_handed_claim_gets_is_the_claims_for_its_size(settings) -> None:
    parameters = handoff.hand_parameters(batch_size=200)

    assert parameters["hand"] is True and parameters["hand_size"] == 200
    assert parameters["hand_lease"] == handoff.claim_lease_seconds(200)


def test_a_handed_batch_that_finds_every_sending_thread_taken_is_given_back_for_another_worker(
    organization, monkeypatch
) -> None:
    """Slow receivers hold this worker's threads: the batch would wait behind them, so it goes back to the claim."""
    subscribe(organization)
    record(organization, 2)
    (batch,) = relay_handing()
    monkeypatch.setattr(SenderPool, "busy", property(lambda pool: 10**6))
    woken: list[int] = []
    monkeypatch.setattr(dispatch, "wake_delivery_workers", woken.append)

    run = dispatch.send_due_deliveries(batch_size=50, max_seconds=10, handed=batch)

    assert (run.handled, run.time_up, woken) == (0, True, [1])
    assert set(Delivery.objects.values_list("claim_token", "attempt_count")) == {(None, 0)}
    assert len(claim_due(batch_size=100, token=uuid.uuid4())) == 2
