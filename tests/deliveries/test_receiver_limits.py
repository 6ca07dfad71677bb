"""Receiver limits in the claim, the relay and the record: a subscription's rate limit, its cap on deliveries in
flight and its Retry-After throttle hold for every claimer at once, and leave the other subscriptions alone."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.claims import ClaimedBatch, claim_due, record_outcomes
from deliveries.handoff import HandedBatch
from deliveries.models import Delivery, DeliveryStatus
from deliveries.relay import relay_pending
from deliveries.retry import decide
from deliveries.transport import DeliveryResult
from sapien.events.outbox import record_event
from subscriptions.models import SendState, Subscription
from tests.support.prepared import prepared_statements


def subscribe(organization, **limits) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20, **limits
    )


def record(organization, count: int) -> None:
    with transaction.atomic():
        for _ in range(count):
            record_event(organization_id=organization.id, event_type="person.created", data={})


def taken_by(batch, subscription: Subscription) -> int:
    return sum(1 for delivery in batch if delivery.subscription.id == subscription.id)


def answer(batch, token: uuid.UUID, status: int = 200, retry_after: str | None = None) -> None:
    now = timezone.now()
    result = DeliveryResult(started_at=now, duration_ms=3, status_code=status, retry_after=retry_after)
    record_outcomes([decide(delivery, result, now=now) for delivery in batch], token=token)


def in_flight(subscription: Subscription) -> int:
    state = SendState.objects.get(subscription_id=subscription.id)
    now = timezone.now()
    return sum(n for n, until in zip(state.flight_counts, state.flight_until, strict=True) if until > now)


def make_due_again() -> None:
    Delivery.objects.filter(status=DeliveryStatus.PENDING, claim_token__isnull=True).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def slots(subscription: Subscription) -> list[float]:
    """The put-back deliveries' due times, in seconds after the first of them."""
    times = sorted(
        at
        for at in Delivery.objects.filter(subscription=subscription, claim_token__isnull=True).values_list(
            "next_attempt_at", flat=True
        )
        if at is not None
    )
    return [round((at - times[0]).total_seconds(), 3) for at in times]


@pytest.mark.django_db
def test_a_rate_limited_subscription_gets_its_rate_and_the_rest_a_seconds_worth_a_second(organization) -> None:
    limited = subscribe(organization, rate_limit_per_second=5)
    free = subscribe(organization)
    record(organization, 12)
    relay_pending(batch_size=100)

    batch = claim_due(batch_size=100, token=uuid.uuid4())

    assert (taken_by(batch, limited), taken_by(batch, free)) == (5, 12)
    assert isinstance(batch, ClaimedBatch) and batch.put_back == 7
    assert slots(limited) == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]  # the rate's worth each second, from its room
    assert set(
        Delivery.objects.filter(subscription=limited, claim_token__isnull=True).values_list("attempt_count", flat=True)
    ) == {0}  # put back, not attempted
    assert claim_due(batch_size=100, token=uuid.uuid4()) == []


@pytest.mark.django_db
def test_what_a_later_claim_puts_back_is_spaced_after_what_was_put_back_before(organization) -> None:
    limited = subscribe(organization, rate_limit_per_second=5)
    record(organization, 8)
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    first = claim_due(batch_size=100, token=token)
    assert len(first) == 5  # 3 put back
    answered = DeliveryResult(started_at=timezone.now() - timedelta(seconds=10), duration_ms=3, status_code=200)
    record_outcomes([decide(delivery, answered, now=timezone.now()) for delivery in first], token=token)
    record(organization, 9)
    relay_pending(batch_size=100)

    later = claim_due(batch_size=100, token=uuid.uuid4())

    assert isinstance(later, ClaimedBatch)
    assert (len(later), later.put_back) == (5, 4)  # the window is empty again: five of the nine new
    # After the first three: two more fill their second, the other two go to the next one.
    assert [round(at) for at in slots(limited)] == [0, 0, 0, 0, 0, 1, 1]


@pytest.mark.django_db
def test_while_the_rate_window_is_full_the_oldest_due_stay_in_line(organization) -> None:
    limited = subscribe(organization, rate_limit_per_second=5)
    record(organization, 5)
    relay_pending(batch_size=100)
    assert len(claim_due(batch_size=100, token=uuid.uuid4())) == 5
    record(organization, 4)
    relay_pending(batch_size=100)
    due = dict(
        Delivery.objects.filter(subscription=limited, claim_token__isnull=True).values_list("id", "next_attempt_at")
    )

    later = claim_due(batch_size=100, token=uuid.uuid4())

    assert isinstance(later, ClaimedBatch)
    assert (len(later), later.put_back) == (0, 0)  # the five in flight fill the rate
    after = dict(
        Delivery.objects.filter(subscription=limited, claim_token__isnull=True).values_list("id", "next_attempt_at")
    )
    assert after == due and len(due) == 4  # untouched: first in line when the room comes back


@pytest.mark.django_db
def test_a_full_rate_window_lets_no_more_start_until_it_has_passed(organization) -> None:
    limited = subscribe(organization, rate_limit_per_second=3)
    record(organization, 6)
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    first = claim_due(batch_size=100, token=token)
    answer(first, token)  # finished at once: the rate, not the cap, holds the rest back
    make_due_again()

    assert claim_due(batch_size=100, token=uuid.uuid4()) == []

    SendState.objects.filter(subscription_id=limited.id).update(
        sent_at=[timezone.now() - timedelta(seconds=5)]
    )  # the window has passed
    make_due_again()
    second = claim_due(batch_size=100, token=uuid.uuid4())
    assert (len(first), len(second)) == (3, 3)


@pytest.mark.django_db
def test_at_its_cap_a_subscription_gets_nothing_until_sends_are_recorded(organization) -> None:
    capped = subscribe(organization, max_in_flight=3)
    other = subscribe(organization)
    record(organization, 8)
    relay_pending(batch_size=100)

    token = uuid.uuid4()
    first = claim_due(batch_size=100, token=token)
    assert (taken_by(first, capped), taken_by(first, other)) == (3, 8)
    assert in_flight(capped) == 3
    make_due_again()
    assert claim_due(batch_size=100, token=uuid.uuid4()) == []

    answer([d for d in first if d.subscription.id == capped.id][:2], token)  # two finish: two slots come back
    assert in_flight(capped) == 1
    make_due_again()
    second = claim_due(batch_size=100, token=uuid.uuid4())

    assert taken_by(second, capped) == 2
    assert in_flight(capped) == 3


@pytest.mark.django_db
def test_at_its_cap_a_subscriptions_due_deliveries_stay_first_in_line_untouched(organization) -> None:
    capped = subscribe(organization, max_in_flight=3)
    record(organization, 8)
    relay_pending(batch_size=100)
    before = dict(Delivery.objects.values_list("id", "updated_at"))

    batch = claim_due(batch_size=100, token=uuid.uuid4())

    assert isinstance(batch, ClaimedBatch)
    assert (len(batch), batch.put_back, batch.capped) == (3, 0, True)
    left = Delivery.objects.filter(subscription=capped, claim_token__isnull=True)
    assert left.count() == 5
    assert all(delivery.updated_at == before[delivery.id] for delivery in left)  # not written
    assert all(at is not None and at <= timezone.now() for at in left.values_list("next_attempt_at", flat=True))  # due
    assert batch.wake_in is not None and 0 < batch.wake_in <= 0.5


@pytest.mark.django_db
def test_a_subscription_at_its_cap_does_not_crowd_the_others_out_of_a_batch(organization) -> None:
    capped = subscribe(organization, max_in_flight=2)
    record(organization, 10)  # its backlog leads the queue
    relay_pending(batch_size=100)
    other = subscribe(organization)
    record(organization, 3)
    relay_pending(batch_size=100)
    Delivery.objects.filter(subscription=capped).update(next_attempt_at=timezone.now() - timedelta(seconds=10))
    first = claim_due(batch_size=5, token=uuid.uuid4())
    assert (taken_by(first, capped), taken_by(first, other)) == (2, 0)

    second = claim_due(batch_size=5, token=uuid.uuid4())

    assert isinstance(second, ClaimedBatch)
    assert (taken_by(second, capped), taken_by(second, other), second.capped) == (0, 3, True)
    assert Delivery.objects.filter(subscription=capped, claim_token__isnull=True).count() == 11  # 13 less 2


@pytest.mark.django_db
def test_a_claim_that_caps_held_nothing_back_says_so(organization) -> None:
    subscribe(organization, max_in_flight=3)
    record(organization, 2)
    relay_pending(batch_size=100)

    batch = claim_due(batch_size=100, token=uuid.uuid4())

    assert isinstance(batch, ClaimedBatch)
    assert (len(batch), batch.capped, batch.wake_in) == (2, False, None)


@pytest.mark.django_db
def test_the_default_cap_applies_to_a_subscription_without_its_own(organization, settings) -> None:
    settings.ESL_DEFAULT_MAX_IN_FLIGHT = 4
    default = subscribe(organization)
    record(organization, 6)
    relay_pending(batch_size=100)

    assert taken_by(claim_due(batch_size=100, token=uuid.uuid4()), default) == 4


@pytest.mark.django_db
def test_a_claim_whose_worker_died_stops_counting_when_its_lease_lapses(organization) -> None:
    capped = subscribe(organization, max_in_flight=2)
    record(organization, 4)
    relay_pending(batch_size=100)
    assert len(claim_due(batch_size=100, token=uuid.uuid4())) == 2  # and never recorded: the worker died

    Delivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))  # the lease lapses
    SendState.objects.filter(subscription_id=capped.id).update(
        flight_until=[timezone.now() - timedelta(seconds=1)]
    )  # with the claim it counted
    make_due_again()
    retaken = claim_due(batch_size=100, token=uuid.uuid4())

    assert len(retaken) == 2
    assert in_flight(capped) == 2
    assert len(SendState.objects.get(subscription_id=capped.id).flight_tokens) == 1  # the lapsed entry is gone


@pytest.mark.django_db
def test_a_stale_claims_record_gives_back_nothing(organization) -> None:
    capped = subscribe(organization, max_in_flight=2)
    record(organization, 2)
    relay_pending(batch_size=100)
    stale = uuid.uuid4()
    batch = claim_due(batch_size=100, token=stale)
    Delivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    SendState.objects.filter(subscription_id=capped.id).update(flight_until=[timezone.now() - timedelta(seconds=1)])
    current = uuid.uuid4()
    assert len(claim_due(batch_size=100, token=current)) == 2

    answer(batch, stale)  # the worker that lost its lease records late

    assert in_flight(capped) == 2


@pytest.mark.django_db
def test_a_throttled_subscription_is_put_back_until_its_throttle_ends(organization) -> None:
    until = timezone.now() + timedelta(seconds=30)
    throttled = subscribe(organization, throttled_until=until)
    other = subscribe(organization)
    record(organization, 3)
    relay_pending(batch_size=100)

    batch = claim_due(batch_size=100, token=uuid.uuid4())

    assert (taken_by(batch, throttled), taken_by(batch, other)) == (0, 3)
    assert set(Delivery.objects.filter(subscription=throttled).values_list("next_attempt_at", flat=True)) == {until}


@pytest.mark.django_db
@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_on_429_or_503_throttles_the_whole_subscription(organization, status: int) -> None:
    slowed = subscribe(organization)
    other = subscribe(organization)
    record(organization, 1)
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    batch = claim_due(batch_size=100, token=token)
    before = timezone.now()

    answer([d for d in batch if d.subscription.id == slowed.id], token, status=status, retry_after="120")

    slowed.refresh_from_db()
    other.refresh_from_db()
    assert slowed.throttled_until is not None
    assert before + timedelta(seconds=120) <= slowed.throttled_until <= timezone.now() + timedelta(seconds=120)
    assert other.throttled_until is None
    record(organization, 1)
    relay_pending(batch_size=100)
    later = claim_due(batch_size=100, token=uuid.uuid4())
    assert (taken_by(later, slowed), taken_by(later, other)) == (0, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "retry_after"), [(500, "120"), (429, None), (429, "soon"), (200, "120")])
def test_no_throttle_without_a_retry_after_on_429_or_503(organization, status: int, retry_after) -> None:
    untouched = subscribe(organization)
    record(organization, 1)
    relay_pending(batch_size=100)
    token = uuid.uuid4()

    answer(claim_due(batch_size=100, token=token), token, status=status, retry_after=retry_after)

    untouched.refresh_from_db()
    assert untouched.throttled_until is None


@pytest.mark.django_db
def test_a_throttle_is_capped_by_the_longest_retry_delay(organization, settings) -> None:
    settings.ESL_RETRY_MAX_DELAY_MS = 60_000
    slowed = subscribe(organization)
    record(organization, 1)
    relay_pending(batch_size=100)
    token = uuid.uuid4()

    answer(claim_due(batch_size=100, token=token), token, status=429, retry_after="86400")

    slowed.refresh_from_db()
    assert slowed.throttled_until is not None
    assert slowed.throttled_until <= timezone.now() + timedelta(seconds=60)


@pytest.mark.django_db
def test_the_relay_births_claimed_only_within_limits_and_counts_what_it_births(organization, settings) -> None:
    settings.ESL_DEFAULT_MAX_IN_FLIGHT = 3
    rated = subscribe(organization, rate_limit_per_second=100)
    capped = subscribe(organization, max_in_flight=50)
    throttled = subscribe(organization, throttled_until=timezone.now() + timedelta(minutes=1))
    default = subscribe(organization)
    record(organization, 5)
    handed: list[HandedBatch] = []

    relay_pending(batch_size=500, hand_to=handed.extend)

    born = Delivery.objects.filter(claim_token__isnull=False)
    assert {d.subscription_id for d in born} == {default.id}
    assert born.count() == 3  # the default cap
    assert sum(len(batch.ids) for batch in handed) == 3
    assert in_flight(default) == 3
    for unborn in (rated, capped, throttled):
        assert Delivery.objects.filter(subscription=unborn, claim_token__isnull=True, attempt_count=0).count() == 5
    # The claims see what the relay handed over: the default subscription has no room left.
    make_due_again()
    assert taken_by(claim_due(batch_size=100, token=uuid.uuid4()), default) == 0


def state_rows_read() -> int:
    """Rows of the state table this transaction's scans have read so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE relid = %s::regclass",
            [SendState._meta.db_table],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_relay_reads_each_subscriptions_state_once_however_many_deliveries_it_births(organization) -> None:
    # A state row updated many times while an old transaction stays open keeps every version, and each read of it
    # walks them all: read once per delivery, a pass's cost grew with its batch times that history.
    subscriptions = [subscribe(organization) for _ in range(3)]
    record(organization, 1)
    relay_pending(batch_size=100, hand_to=lambda batches: None)  # every subscription has its state row now
    record(organization, 20)
    before = state_rows_read()

    relay_pending(batch_size=100, hand_to=lambda batches: None)

    assert Delivery.objects.filter(claim_token__isnull=False).count() == 63  # all born claimed, within the cap
    # Each subscription's row: once to decide what may be born claimed, once by the conflict check of adding to it.
    assert state_rows_read() - before == 2 * len(subscriptions)


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_share_one_cap(organization) -> None:
    capped = subscribe(organization, max_in_flight=5)
    for _ in range(3):
        subscribe(organization)
    record(organization, 30)
    relay_pending(batch_size=1000)
    taken: list[int] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        try:
            count = 0
            while batch := claim_due(batch_size=7, token=uuid.uuid4()):
                count += taken_by(batch, capped)
            taken.append(count)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(taken) == 5
    assert in_flight(capped) == 5


@pytest.mark.django_db
def test_a_limited_claim_is_still_one_statement(organization, django_assert_num_queries) -> None:
    subscribe(organization, rate_limit_per_second=2, max_in_flight=1)
    subscribe(organization, throttled_until=timezone.now() + timedelta(minutes=1))
    subscribe(organization)
    record(organization, 5)
    relay_pending(batch_size=100)

    with django_assert_num_queries(1):
        batch = claim_due(batch_size=50, token=uuid.uuid4())

    assert len(batch) == 1 + 0 + 5


@pytest.mark.django_db
def test_a_rate_limited_send_counts_until_a_second_after_its_answer_not_its_record(organization) -> None:
    limited = subscribe(organization, rate_limit_per_second=3)
    record(organization, 6)
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    first = claim_due(batch_size=100, token=token)
    long_ago = timezone.now() - timedelta(seconds=10)
    answered = DeliveryResult(started_at=long_ago, duration_ms=3, status_code=200)
    record_outcomes([decide(delivery, answered, now=timezone.now()) for delivery in first], token=token)  # late
    make_due_again()

    second = claim_due(batch_size=100, token=uuid.uuid4())

    assert (taken_by(first, limited), taken_by(second, limited)) == (3, 3)


@pytest.mark.django_db
def test_the_claim_says_when_to_claim_again_for_what_it_put_back(organization) -> None:
    subscribe(organization, rate_limit_per_second=2)
    subscribe(organization, throttled_until=timezone.now() + timedelta(seconds=30))
    record(organization, 3)
    relay_pending(batch_size=100)

    held = claim_due(batch_size=100, token=uuid.uuid4())

    assert isinstance(held, ClaimedBatch)
    assert (len(held), held.put_back) == (2, 4)
    # The rate-limited one's window is full of sends still open: the record of their answers will wake a worker.
    # The throttled one's throttle ends in 30 seconds (from the test transaction's start, as now() sees it).
    assert held.wake_in is not None and 29 < held.wake_in < 31
    again = claim_due(batch_size=100, token=uuid.uuid4())
    assert isinstance(again, ClaimedBatch)
    assert (len(again), again.put_back, again.wake_in) == (0, 0, None)  # nothing due, nothing put back


@pytest.mark.django_db
def test_the_claim_is_prepared_once_on_its_connection(organization) -> None:
    subscribe(organization)
    record(organization, 3)
    relay_pending(batch_size=100)

    for _ in range(3):
        make_due_again()
        claim_due(batch_size=100, token=uuid.uuid4())

    assert len(prepared_statements("claimed_rows AS")) == 1
