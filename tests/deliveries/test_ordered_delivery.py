"""Ordered delivery in PostgreSQL: per (subscription, ordering key), one delivery in flight, in event order."""

import threading
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.claims import ClaimedDelivery, claim_due, has_due_deliveries, record_outcomes
from deliveries.models import Delivery, DeliveryStatus
from deliveries.relay import relay_batch, relay_pending
from deliveries.replay import events_replay
from deliveries.retry import decide
from deliveries.services import delivery_redeliver
from deliveries.transport import DeliveryResult
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.events import events_backdate

ADA, GRACE = uuid.uuid4(), uuid.uuid4()
# Due for certain: in a test's transaction, PostgreSQL's now() stays at the transaction's start.
PAST = timezone.now() - timedelta(days=1)


def subscription(organization, *, ordered: bool, events=("*",)) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=list(events), secret="s" * 20,
        ordered=ordered,
    )  # fmt: skip


def changed(organization, user_id: uuid.UUID, status: str = "busy") -> Event:
    """An ``availability.changed`` of ``user_id``: its ordering key is ``user:<id>``."""
    with transaction.atomic():
        event = record_event(
            organization_id=organization.id, event_type="availability.changed",
            data={"user_id": str(user_id), "current_status": status},
        )  # fmt: skip
    assert event is not None
    return event


def claimed_events(batch: list[ClaimedDelivery]) -> set[uuid.UUID]:
    return {claimed.event.id for claimed in batch}


def answer(batch: list[ClaimedDelivery], token: uuid.UUID, status_code: int, *, attempt: int | None = None) -> None:
    now = timezone.now()
    outcomes = [
        decide(claimed if attempt is None else replace(claimed, attempt=attempt),
               DeliveryResult(started_at=now, duration_ms=2, status_code=status_code), now=now)
        for claimed in batch
    ]  # fmt: skip
    record_outcomes(outcomes, token=token)


def claim(batch_size: int = 50) -> tuple[list[ClaimedDelivery], uuid.UUID]:
    token = uuid.uuid4()
    return claim_due(batch_size=batch_size, token=token), token


@pytest.mark.django_db
def test_the_relay_gives_deliveries_the_events_key_only_for_ordered_subscriptions(organization) -> None:
    ordered = subscription(organization, ordered=True)
    unordered = subscription(organization, ordered=False)
    availability = changed(organization, ADA)
    with transaction.atomic():
        ping = record_event(organization_id=organization.id, event_type="system.maintenance.scheduled", data={})
    assert ping is not None

    relay_pending(batch_size=100)

    keys = {(d.subscription_id, d.event_id): d.ordering_key for d in Delivery.objects.all()}
    assert keys == {
        (ordered.id, availability.id): f"user:{ADA}",
        (ordered.id, ping.id): None,  # system events have no key: never held back
        (unordered.id, availability.id): None,
        (unordered.id, ping.id): None,
    }


@pytest.mark.django_db
def test_an_ordered_subscriptions_keyed_deliveries_are_never_born_claimed(organization) -> None:
    ordered = subscription(organization, ordered=True)
    unordered = subscription(organization, ordered=False)
    changed(organization, ADA)
    with transaction.atomic():
        record_event(organization_id=organization.id, event_type="system.maintenance.scheduled", data={})

    batch = relay_batch(batch_size=100, hand=True)

    handed = {delivery_id for handed in batch.handed for delivery_id in handed.ids}
    born_claimed = set(Delivery.objects.filter(claim_token__isnull=False).values_list("id", flat=True))
    assert handed == born_claimed
    waiting = Delivery.objects.get(subscription=ordered, ordering_key__isnull=False)
    assert (waiting.claim_token, waiting.attempt_count, waiting.status) == (None, 0, DeliveryStatus.PENDING)
    assert Delivery.objects.filter(subscription=unordered, claim_token__isnull=False).count() == 2
    assert (
        Delivery.objects.filter(subscription=ordered, ordering_key__isnull=True, claim_token__isnull=False).count() == 1
    )


@pytest.mark.django_db
def test_the_claim_takes_only_each_keys_oldest_and_holds_no_other_key_back(organization) -> None:
    subscription(organization, ordered=True)
    ada_first, ada_second = changed(organization, ADA, "busy"), changed(organization, ADA, "away")
    grace_first = changed(organization, GRACE)
    relay_pending(batch_size=100)

    first, token = claim()

    assert claimed_events(first) == {ada_first.id, grace_first.id}
    assert claim()[0] == []  # Ada's second waits while her first is in flight
    assert not has_due_deliveries()  # so the sweep wakes nobody for it

    answer(first, token, 200)
    second, _ = claim()
    assert claimed_events(second) == {ada_second.id}


@pytest.mark.django_db
def test_an_unordered_subscription_is_never_held_back(organization) -> None:
    subscription(organization, ordered=False)
    events = [changed(organization, ADA, status) for status in ("busy", "away", "available")]
    relay_pending(batch_size=100)

    batch, _ = claim()

    assert claimed_events(batch) == {event.id for event in events}


@pytest.mark.django_db
def test_a_failed_attempt_with_retries_left_holds_its_key_until_it_finally_fails(organization) -> None:
    subscription(organization, ordered=True)
    ada_first, ada_second = changed(organization, ADA, "busy"), changed(organization, ADA, "away")
    grace_first = changed(organization, GRACE)
    relay_pending(batch_size=100)
    first, token = claim()
    answer([c for c in first if c.event.id == grace_first.id], token, 200)

    answer([c for c in first if c.event.id == ada_first.id], token, 500)  # retried later
    Delivery.objects.filter(event_id=ada_first.id).update(next_attempt_at=timezone.now() + timedelta(hours=1))

    head = Delivery.objects.get(event_id=ada_first.id)
    assert (head.status, head.attempt_count) == (DeliveryStatus.PENDING, 1)
    assert claim()[0] == []  # her second waits behind the retry, however long
    assert Delivery.objects.get(event_id=ada_second.id).attempt_count == 0

    Delivery.objects.filter(event_id=ada_first.id).update(next_attempt_at=PAST)  # its retry is due
    retry, token = claim()
    assert claimed_events(retry) == {ada_first.id}
    answer(retry, token, 500, attempt=99)  # past every retry budget: finally failed
    assert Delivery.objects.get(event_id=ada_first.id).status == DeliveryStatus.FAILED

    assert claimed_events(claim()[0]) == {ada_second.id}


@pytest.mark.django_db
def test_a_lapsed_claim_gives_the_key_back_to_the_same_delivery(organization) -> None:
    subscription(organization, ordered=True)
    ada_first, _ = changed(organization, ADA, "busy"), changed(organization, ADA, "away")
    relay_pending(batch_size=100)
    claim()
    Delivery.objects.filter(event_id=ada_first.id).update(claimed_until=timezone.now() - timedelta(seconds=1))

    again, _ = claim()

    assert claimed_events(again) == {ada_first.id}


@pytest.mark.django_db
def test_a_redelivered_delivery_waits_for_the_one_in_flight_then_goes_before_the_rest(organization) -> None:
    subscription(organization, ordered=True)
    first, second, third = (changed(organization, ADA, status) for status in ("busy", "away", "available"))
    relay_pending(batch_size=100)
    batch, token = claim()
    answer(batch, token, 200)  # first delivered
    in_flight, in_flight_token = claim()
    assert claimed_events(in_flight) == {second.id}

    delivery_redeliver(delivery=Delivery.objects.get(event_id=first.id))
    Delivery.objects.filter(event_id=first.id).update(next_attempt_at=PAST)  # due by the test transaction's clock

    assert claim()[0] == []  # never two of a key in flight
    answer(in_flight, in_flight_token, 200)
    again, token = claim()
    assert claimed_events(again) == {first.id}  # its event's place: before the third
    answer(again, token, 200)
    assert claimed_events(claim()[0]) == {third.id}


@pytest.mark.django_db
def test_an_earlier_event_of_the_key_still_in_the_outbox_holds_the_key(organization) -> None:
    subscription(organization, ordered=True)
    later = changed(organization, ADA, "away")
    relay_pending(batch_size=100)
    earlier = changed(organization, ADA, "busy")  # as a slower relay, still fanning it out, would leave it
    events_backdate(Event.objects.get(pk=later.pk).created_at - timedelta(milliseconds=1), id=earlier.id)

    assert claim()[0] == []

    relay_pending(batch_size=100)
    assert claimed_events(claim()[0]) == {earlier.id}


@pytest.mark.django_db
def test_turning_ordered_off_releases_what_the_key_held(organization) -> None:
    ordered = subscription(organization, ordered=True)
    events = [changed(organization, ADA, status) for status in ("busy", "away", "available")]
    relay_pending(batch_size=100)
    assert len(claim()[0]) == 1

    Subscription.objects.filter(pk=ordered.pk).update(ordered=False)

    assert claimed_events(claim()[0]) == {events[1].id, events[2].id}


@pytest.mark.django_db
def test_a_replay_delivers_an_ordered_subscriptions_range_one_per_key_in_event_order(organization) -> None:
    events = [changed(organization, ADA, status) for status in ("busy", "away", "available")]
    relay_pending(batch_size=100)  # before the subscription existed: no delivery yet
    ordered = subscription(organization, ordered=True)

    result = events_replay(
        subscription=ordered, since=timezone.now() - timedelta(hours=1), until=timezone.now() + timedelta(seconds=1)
    )

    assert result.events == 3
    assert set(Delivery.objects.values_list("ordering_key", flat=True)) == {f"user:{ADA}"}
    sent = []
    while True:
        batch, token = claim()
        if not batch:
            break
        assert len(batch) == 1
        sent.append(batch[0].event.id)
        answer(batch, token, 200)
    assert sent == [event.id for event in events]


@pytest.mark.django_db
def test_the_claim_stays_one_statement_with_ordered_subscriptions(organization, django_assert_num_queries) -> None:
    subscription(organization, ordered=True)
    subscription(organization, ordered=False)
    for status in ("busy", "away"):
        changed(organization, ADA, status)
        changed(organization, GRACE, status)
    relay_pending(batch_size=100)

    with django_assert_num_queries(1):
        batch, _ = claim()

    assert len(batch) == 4 + 2  # the unordered one's four, and one per key of the ordered one


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_two_of_a_key(organization) -> None:
    subscription(organization, ordered=True)
    users = [uuid.uuid4() for _ in range(10)]
    for _ in range(5):
        for user_id in users:
            changed(organization, user_id)
    relay_pending(batch_size=1000)
    claims: list[list[ClaimedDelivery]] = []
    barrier = threading.Barrier(4)

    def take() -> None:
        barrier.wait()
        try:
            claims.append(claim_due(batch_size=7, token=uuid.uuid4()))
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    taken = [claimed for batch in claims for claimed in batch]
    keys = [Delivery.objects.get(pk=claimed.id).ordering_key for claimed in taken]
    assert len(keys) == len(set(keys))  # at most one per user
    assert len(taken) <= len(users)
    first_of_each = {Event.objects.filter(body__contains=str(user_id)).order_by("created_at", "id")[0].id
                     for user_id in users}  # fmt: skip
    assert {claimed.event.id for claimed in taken} <= first_of_each
