"""Every hot query reads only the day partitions it needs, as PostgreSQL's own plans show.

The relay and the claim prune when the statement starts (their bounds come from the rows they
lock); the log and the event history prune when the query is planned (their bounds are values).
"""

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.claims import CLAIM_SQL, HANDED_SQL, ClaimedDelivery, handed_deliveries, record_outcomes
from deliveries.handoff import HandedBatch
from deliveries.limits import claim_limit_parameters
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.partitions import history_partitions_ensure
from deliveries.relay import RELAY_SQL, relay_parameters, relay_pending
from deliveries.retry import Outcome, decide
from deliveries.selectors import deliveries_of, with_events_and_attempts
from deliveries.transport import DeliveryResult
from sapien.core.partitions import partition_name
from sapien.events.models import Event
from sapien.events.outbox import record_event
from sapien.events.selectors import events_of, retention_start
from subscriptions.models import Subscription
from tests.support.prepared import prepared_statements

pytestmark = pytest.mark.django_db

TODAY = timezone.now().date()


@pytest.fixture
def subscription(organization):
    history_partitions_ensure(now=timezone.now())  # yesterday to three days ahead
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def record(organization, count: int = 3) -> None:
    with transaction.atomic():
        for _ in range(count):
            record_event(organization_id=organization.id, event_type="person.created", data={})


def relayed_and_handed(organization, events: int) -> HandedBatch:
    """``events`` new events relayed in one pass, their deliveries handed over as one batch."""
    record(organization, events)
    handed_batches: list[HandedBatch] = []
    relay_pending(batch_size=100, hand_to=handed_batches.extend)
    (handed,) = handed_batches
    return handed


def read(handed: HandedBatch) -> list[ClaimedDelivery]:
    return handed_deliveries(token=handed.token, ids=handed.ids, since=handed.since, until=handed.until)


def answered_ok(batch: list[ClaimedDelivery]) -> list[Outcome]:
    now = timezone.now()
    answered = DeliveryResult(started_at=now, duration_ms=3, status_code=200)
    return [decide(delivery, answered, now=now) for delivery in batch]


def analyzed_plan(sql: str, params: dict) -> str:
    with transaction.atomic(), connection.cursor() as cursor:  # EXPLAIN ANALYZE runs it: undone below
        # Which partitions a plan reads, not how it scans them: a partition that other tests filled and autovacuum
        # analyzed holds a few rows, which a sequential scan reads as cheaply as an index would.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def section(plan: str, start: str, end: str) -> str:
    return plan[plan.index(start) : plan.index(end, plan.index(start))]


def partitions_read(plan: str, table: str) -> set[str]:
    """The partitions of ``table`` that a plan scanned (runtime pruning prints the others "never executed")."""
    return {
        match.group(1)
        for line in plan.splitlines()
        if "never executed" not in line
        and (match := re.search(rf"\bon ({table}_(?:p\d{{8}}|default))\b", line))
        and " Update on " not in line  # the list of partitions an UPDATE may route to, not a scan
    }


def test_the_relay_reads_and_writes_no_event_row(organization, subscription) -> None:
    record(organization)

    plan = analyzed_plan(RELAY_SQL, relay_parameters(batch_size=100, hand=True))

    assert partitions_read(plan, "events_event") == set()  # the outbox entries carry what fan-out needs
    assert "on events_outbox" in plan


def test_with_a_payload_filter_the_relay_reads_event_rows_of_their_day_only(organization, subscription) -> None:
    Subscription.objects.create(organization=organization, callback_url="https://hooks.example.com/",
                                events=["person.*"], secret="s" * 20, filter={"type": "person.created"})  # fmt: skip
    record(organization)

    plan = analyzed_plan(RELAY_SQL, relay_parameters(batch_size=100, hand=True))

    bodies = section(plan, "CTE filter_bodies", "CTE fanned")
    assert partitions_read(bodies, "events_event") == {partition_name("events_event", TODAY)}
    assert "Seq Scan" not in bodies
    assert partitions_read(plan.replace(bodies, ""), "events_event") == set()  # only the filters read them


def test_a_handed_batch_is_read_from_its_days_partitions_only(organization, subscription) -> None:
    handed = relayed_and_handed(organization, 3)

    plan = analyzed_plan(
        HANDED_SQL, {"token": handed.token, "ids": list(handed.ids), "since": handed.since, "until": handed.until}
    )

    assert partitions_read(plan, "deliveries_delivery") == {partition_name("deliveries_delivery", TODAY)}
    assert partitions_read(plan, "events_event") == {partition_name("events_event", TODAY)}
    assert "Seq Scan" not in plan


def test_the_claim_updates_only_the_partition_of_the_deliveries_it_claimed(organization, subscription) -> None:
    record(organization)
    relay_pending(batch_size=100)

    plan = analyzed_plan(CLAIM_SQL, {"batch": 100, "token": uuid.uuid4(), "lease": 30, **claim_limit_parameters()})

    claimed, events = section(plan, "CTE claimed", "CTE events"), plan.split("CTE events")[1]
    assert partitions_read(claimed, "deliveries_delivery") == {partition_name("deliveries_delivery", TODAY)}
    assert partitions_read(events, "events_event") == {partition_name("events_event", TODAY)}
    assert "Seq Scan" not in claimed + events


def test_the_delivery_log_between_two_times_reads_only_their_days(organization, subscription) -> None:
    since = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    log = deliveries_of(subscription).filter(
        event_created_at__gte=since, event_created_at__lt=since + timedelta(days=1)
    )

    plan = log[:50].explain()

    assert partitions_read(plan, "deliveries_delivery") == {partition_name("deliveries_delivery", TODAY)}


def test_a_pages_events_and_attempts_are_read_from_its_days_only(organization, subscription) -> None:
    record(organization)
    relay_pending(batch_size=100)
    page = list(deliveries_of(subscription)[:50])
    times = {delivery.event_created_at for delivery in page}

    events_plan = Event.objects.filter(id__in=[d.event_id for d in page], created_at__in=times).explain()

    assert partitions_read(events_plan, "events_event") == {partition_name("events_event", TODAY)}
    assert [delivery.event.id for delivery in with_events_and_attempts(page)] == [d.event_id for d in page]


def test_the_event_history_reads_only_the_retained_days(organization, subscription, settings) -> None:
    history_partitions_ensure(now=timezone.now() - timedelta(days=2))  # from three days back
    settings.ESL_RETENTION_HOURS = 1
    first_day = retention_start().date()  # today, or yesterday in the first hour of a day

    plan = events_of(organization)[:50].explain()

    read = partitions_read(plan, "events_event")
    assert partition_name("events_event", first_day - timedelta(days=1)) not in read
    assert partition_name("events_event", first_day) in read


def test_the_relay_statement_is_prepared_once_and_fans_out_the_same_under_a_generic_plan(
    organization, subscription
) -> None:
    filtered = Subscription.objects.create(organization=organization, callback_url="https://hooks.example.com/",
                                           events=["person.*"], secret="s" * 20, filter={"data": {"n": 1}})  # fmt: skip
    for n in range(7):  # generic plans from the first run (sapien/settings.py)
        with transaction.atomic():
            record_event(organization_id=organization.id, event_type="person.created", data={"n": n % 2})
        relay_pending(batch_size=100, hand_to=lambda batches: None)

    assert subscription.deliveries.count() == 7
    assert filtered.deliveries.count() == 3  # n = 1, 3, 5: the filter holds under the generic plan
    assert len(prepared_statements("filter_bodies AS")) == 1


def prepared_statement(marker: str) -> tuple[str, list[str]]:
    """The one statement prepared on this connection whose text has ``marker``: its name and parameter types."""
    (statement,) = prepared_statements(marker)
    return statement


def test_every_connection_plans_the_statements_it_prepares_generically() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)  # sapien/settings.py: not re-planned at every run


def explained_execution(name: str, types: list[str], handed: HandedBatch) -> str:
    """The analyzed plan of the prepared handed read ``name`` (parameter ``types``) run on ``handed``."""
    bounds = iter([handed.since, handed.until])  # the timestamps come in the statement's order: since, until
    by_type: dict[str, Callable[[], Any]] = {
        "uuid[]": lambda: list(handed.ids),
        "timestamp with time zone": lambda: next(bounds),
        "uuid": lambda: handed.token,
    }
    values = [by_type[kind]() for kind in types]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        placeholders = ", ".join(["%s"] * len(values))
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE {name}({placeholders})", values)
        return "\n".join(row[0] for row in cursor.fetchall())


def sent_early_in_the_day(organization, subscription: Subscription) -> Subscription:
    """Today's partition as early in a day: 200 deliveries, all sent (none pending), analyzed; their subscription
    retired. Returns a fresh subscription, to which new events' deliveries are handed over."""
    record(organization, 200)
    relay_pending(batch_size=500, hand_to=lambda batches: None)
    Delivery.objects.update(status=DeliveryStatus.SUCCEEDED, claim_token=None, claimed_until=None)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deliveries_delivery")
    Subscription.objects.filter(id=subscription.id).update(active=False)
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def test_a_handed_batch_is_read_by_its_keys_not_through_the_queue_of_pending_deliveries(
    organization, subscription
) -> None:
    sent_early_in_the_day(organization, subscription)  # the plan is made while the queue is short, for every batch
    handed = relayed_and_handed(organization, 2)

    assert len(read(handed)) == 2
    plan = explained_execution(*prepared_statement("AND claimed_until > now()"), handed)
    assert "next_attempt_at_idx" not in plan  # which a long queue would make the longest read of all


def sequential_scans(table: str) -> int:
    """How many times this transaction has read a partition of ``table`` whole."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(s.seq_scan), 0) FROM pg_stat_xact_user_tables s"
            " JOIN pg_inherits i ON i.inhrelid = s.relid WHERE i.inhparent = %s::regclass",
            [table],
        )
        return cursor.fetchone()[0]


def test_the_record_reads_its_deliveries_by_key_however_few_rows_their_partition_holds(
    organization, subscription
) -> None:
    fresh = sent_early_in_the_day(organization, subscription)  # today's partition small, as each is early in its day
    whole_reads = []
    for _ in range(3):
        handed = relayed_and_handed(organization, 2)
        outcomes = answered_ok(read(handed))
        before = sequential_scans("deliveries_delivery")
        record_outcomes(outcomes, token=handed.token)
        whole_reads.append(sequential_scans("deliveries_delivery") - before)

    assert fresh.deliveries.filter(status=DeliveryStatus.SUCCEEDED).count() == 6
    assert whole_reads == [0, 0, 0]  # the plan, kept for the rest of the day, reads no partition whole


def test_a_worker_reads_and_records_a_handed_batch_with_prepared_statements_that_prune_under_a_generic_plan(
    organization, subscription
) -> None:
    for _ in range(7):
        handed = relayed_and_handed(organization, 2)
        batch = read(handed)
        record_outcomes(answered_ok(batch), token=handed.token)

    assert len(batch) == 2
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 14  # recorded under a generic plan
    assert DeliveryAttempt.objects.count() == 14
    prepared_statement("attempts AS (")  # the record: prepared once on this connection
    name, types = prepared_statement("AND claimed_until > now()")  # the handed read, likewise
    plan = explained_execution(name, types, relayed_and_handed(organization, 2))
    assert "Subplans Removed" in plan  # pruned when the generic plan starts, on the parameters' days
    assert partitions_read(plan, "deliveries_delivery") == {partition_name("deliveries_delivery", TODAY)}
    assert partitions_read(plan, "events_event") == {partition_name("events_event", TODAY)}
