"""Fan-out and claiming in PostgreSQL: matching, idempotency, disjoint concurrent claims, query counts."""

import threading
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.claims import claim_due, has_due_deliveries, record_outcomes
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.relay import relay_batch, relay_pending
from deliveries.retry import decide
from deliveries.transport import DeliveryResult
from sapien.events.models import Event, OutboxEntry
from sapien.events.outbox import record_event
from subscriptions.models import Subscription


def subscription(organization, events, active=True):
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=events, secret="s" * 20,
        active=active,
    )  # fmt: skip


def event(organization, event_type="person.created", recipient_id=None):
    with transaction.atomic():
        return record_event(organization_id=organization.id, event_type=event_type, data={}, recipient_id=recipient_id)


@pytest.mark.django_db
def test_fan_out_matches_exact_types_families_and_everything(organization, make_organization) -> None:
    exact = subscription(organization, ["person.created"])
    family = subscription(organization, ["person.*"])
    everything = subscription(organization, ["*"])
    other_type = subscription(organization, ["pet.created"])
    inactive = subscription(organization, ["*"], active=False)
    foreign = subscription(make_organization("Other"), ["*"])
    profile_family = subscription(organization, ["availability.*"])
    created = event(organization)
    profile = event(organization, "availability.profile.created")

    result = relay_pending(batch_size=100)

    assert (result.events, result.deliveries) == (2, 5)
    pairs = set(Delivery.objects.values_list("event_id", "subscription_id"))
    assert pairs == {
        (created.id, exact.id), (created.id, family.id), (created.id, everything.id),
        (profile.id, everything.id), (profile.id, profile_family.id),
    }  # fmt: skip
    assert not Delivery.objects.filter(subscription__in=[other_type, inactive, foreign]).exists()
    assert not OutboxEntry.objects.exists()


@pytest.mark.django_db
def test_fan_out_is_idempotent(organization) -> None:
    subscription(organization, ["*"])
    event(organization)
    relay_pending(batch_size=10)

    for relayed in Event.objects.all():  # as if the entry were queued again
        OutboxEntry.objects.create(
            created_at=relayed.created_at, event_id=relayed.id, organization_id=relayed.organization_id,
            type=relayed.type, recipient_id=relayed.recipient_id,
        )  # fmt: skip
    again = relay_pending(batch_size=10)

    assert again.deliveries == 0
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_an_addressed_event_reaches_only_its_recipient_even_when_inactive(organization) -> None:
    target = subscription(organization, ["person.created"], active=False)
    subscription(organization, ["*"])
    event(organization, "system.ping", recipient_id=target.id)

    relay_pending(batch_size=10)

    assert list(Delivery.objects.values_list("subscription_id", flat=True)) == [target.id]


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_delivery(organization) -> None:
    for _ in range(3):
        subscription(organization, ["*"])
    for _ in range(40):
        event(organization)
    relay_pending(batch_size=1000)
    claims: list[list[uuid.UUID]] = []
    barrier = threading.Barrier(4, timeout=30)

    def claim() -> None:
        try:
            taken: list[uuid.UUID] = []
            for _ in range(6):  # rounds in which the four claim at once, until 6 x 4 x 7 > 120
                barrier.wait()
                taken.extend(d.id for d in claim_due(batch_size=7, token=uuid.uuid4()))
            claims.append(taken)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [delivery_id for taken in claims for delivery_id in taken]
    assert len(everything) == 120
    assert len(set(everything)) == 120
    assert sum(1 for taken in claims if taken) >= 2


@pytest.mark.django_db
def test_a_relay_batch_is_one_statement_however_many_events_and_organizations(
    organization, make_organization, django_assert_num_queries
) -> None:
    """Claim, quota count and fan-out in one statement (plus the test transaction's SAVEPOINT and RELEASE)."""
    other = make_organization()
    for org in (organization, other):
        subscription(org, ["*"])
        subscription(org, ["person.*"])
        for _ in range(30):
            event(org)
    event(organization, "system.maintenance.scheduled")

    with django_assert_num_queries(1 + 2):
        batch = relay_batch(batch_size=500)

    assert (batch.events, batch.deliveries) == (61, 121)
    assert Delivery.objects.count() == 121
    assert not OutboxEntry.objects.exists()


@pytest.mark.django_db
def test_claim_is_one_query_and_recording_successes_is_one(organization, django_assert_num_queries) -> None:
    subscription(organization, ["*"])
    for _ in range(25):
        event(organization)
    relay_pending(batch_size=100)
    token = uuid.uuid4()

    with django_assert_num_queries(1):  # a single statement: no transaction of its own
        batch = claim_due(batch_size=50, token=token)
    now = timezone.now()
    outcomes = [
        decide(claimed, DeliveryResult(started_at=now, duration_ms=3, status_code=200), now=now) for claimed in batch
    ]
    with django_assert_num_queries(1):  # attempts, delivery states, counters and health: one autocommitted statement
        record_outcomes(outcomes, token=token)

    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 25
    assert DeliveryAttempt.objects.count() == 25


@pytest.mark.django_db
def test_recording_a_final_failure_adds_the_subscriptions_failure_count_in_one_transaction(
    organization, django_assert_num_queries
) -> None:
    """The count includes the SAVEPOINT and RELEASE the test's own transaction turns the commit into."""
    failing = subscription(organization, ["*"])
    event(organization)
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    (claimed,) = claim_due(batch_size=50, token=token)
    now = timezone.now()
    final = replace(claimed, attempt=99)  # past every retry budget
    outcome = decide(final, DeliveryResult(started_at=now, duration_ms=3, status_code=500), now=now)
    assert outcome.status == DeliveryStatus.FAILED

    with django_assert_num_queries(2 + 3):  # the statement, the failure count, the disabling check
        record_outcomes([outcome], token=token)

    failing.refresh_from_db()
    assert failing.consecutive_failures == 1 and failing.failing_since is not None


@pytest.mark.django_db
def test_a_success_ends_the_subscriptions_run_of_failures(organization) -> None:
    recovering = subscription(organization, ["*"])
    Subscription.objects.filter(pk=recovering.pk).update(consecutive_failures=4, failing_since=timezone.now())
    event(organization)
    relay_pending(batch_size=100)
    token = uuid.uuid4()
    now = timezone.now()
    (claimed,) = claim_due(batch_size=50, token=token)

    record_outcomes(
        [decide(claimed, DeliveryResult(started_at=now, duration_ms=3, status_code=200), now=now)], token=token
    )

    recovering.refresh_from_db()
    assert (recovering.consecutive_failures, recovering.failing_since) == (0, None)


@pytest.mark.django_db
def test_a_stale_claim_cannot_overwrite_a_newer_one(organization) -> None:
    subscription(organization, ["*"])
    event(organization)
    relay_pending(batch_size=10)
    old_token = uuid.uuid4()
    (claimed,) = claim_due(batch_size=10, token=old_token)
    Delivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))  # the lease lapsed
    new_token = uuid.uuid4()
    assert claim_due(batch_size=10, token=new_token)
    now = timezone.now()

    late = decide(claimed, DeliveryResult(started_at=now, duration_ms=1, status_code=500), now=now)
    record_outcomes([late], token=old_token)

    delivery = Delivery.objects.get()
    assert delivery.claim_token == new_token
    assert delivery.status == DeliveryStatus.PENDING
    assert DeliveryAttempt.objects.count() == 1  # the attempt happened and is logged all the same


@pytest.mark.django_db
def test_a_claimed_delivery_is_not_due_until_its_lease_lapses(organization) -> None:
    subscription(organization, ["*"])
    event(organization)
    relay_pending(batch_size=10)

    assert claim_due(batch_size=10, token=uuid.uuid4())
    assert claim_due(batch_size=10, token=uuid.uuid4()) == []
    assert not has_due_deliveries()


@pytest.mark.django_db
def test_an_answer_with_nul_bytes_and_a_lone_surrogate_is_recorded_with_replacement_characters(organization) -> None:
    subscription(organization, ["*"])
    event(organization)
    relay_pending(batch_size=10)
    token = uuid.uuid4()
    (delivery,) = claim_due(batch_size=10, token=token)
    now = timezone.now()
    answer = DeliveryResult(started_at=now, duration_ms=3, status_code=500, response_excerpt="a\x00b", error="x\ud800y")

    record_outcomes([decide(delivery, answer, now=now)], token=token)  # PostgreSQL's text holds neither

    attempt = DeliveryAttempt.objects.get()
    assert (attempt.response_excerpt, attempt.error) == ("a\ufffdb", "x?y")
    recorded = Delivery.objects.get()
    assert (recorded.status, recorded.attempt_count, recorded.claim_token) == (DeliveryStatus.PENDING, 1, None)
