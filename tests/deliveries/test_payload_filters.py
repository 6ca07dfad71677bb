"""Payload filters in the relay's fan-out and in replays: PostgreSQL's ``@>`` decides, and no delivery is made
for an event a subscription's filter refuses."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.relay import relay_batch, relay_pending
from deliveries.replay import events_replay
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from subscriptions.payload_filter import filter_matches
from subscriptions.services import missed_while_disabled

pytestmark = pytest.mark.django_db

BUSY = {"data": {"current_status": "busy"}}


def recorded(**fields: Any) -> Event:
    """``record_event``'s event: always one here (ESL_ENABLED is on in the tests)."""
    event = record_event(**fields)
    assert event is not None
    return event


def subscription(organization, events, payload_filter=None, active=True):
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=events, secret="s" * 20,
        filter=payload_filter, active=active,
    )  # fmt: skip


def availability_changed(organization, status):
    with transaction.atomic():
        return recorded(
            organization_id=organization.id,
            event_type="availability.changed",
            data={"user_id": "u1", "previous_status": "available", "current_status": status, "reason": "manual"},
        )


def delivered_events(sub):
    return set(Delivery.objects.filter(subscription=sub).values_list("event_id", flat=True))


def test_a_filtered_subscription_gets_only_the_events_that_contain_its_filter(organization) -> None:
    filtered = subscription(organization, ["availability.*"], BUSY)
    unfiltered = subscription(organization, ["availability.*"])
    busy = availability_changed(organization, "busy")
    away = availability_changed(organization, "away")

    result = relay_pending(batch_size=100)

    assert (result.events, result.deliveries) == (2, 3)
    assert delivered_events(filtered) == {busy.id}
    assert delivered_events(unfiltered) == {busy.id, away.id}


def test_filters_of_one_batch_are_judged_per_subscription(organization, make_organization) -> None:
    busy_only = subscription(organization, ["*"], BUSY)
    away_only = subscription(organization, ["availability.changed"], {"data": {"current_status": "away"}})
    inactive = subscription(organization, ["*"], BUSY, active=False)
    foreign = subscription(make_organization("Other"), ["*"], BUSY)
    events = [availability_changed(organization, status) for status in ["busy", "away", "busy", "offline"]]

    relay_pending(batch_size=100)

    assert delivered_events(busy_only) == {events[0].id, events[2].id}
    assert delivered_events(away_only) == {events[1].id}
    assert delivered_events(inactive) == delivered_events(foreign) == set()


def test_the_filter_sees_the_whole_envelope_not_only_data(organization) -> None:
    created_ada = subscription(organization, ["*"], {"type": "person.created", "data": {"name": "Ada"}})
    with transaction.atomic():
        ada = recorded(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
        recorded(organization_id=organization.id, event_type="person.deleted", data={"name": "Ada"})
        recorded(organization_id=organization.id, event_type="person.created", data={"name": "Bob"})

    relay_pending(batch_size=100)

    assert delivered_events(created_ada) == {ada.id}


def test_an_event_addressed_to_a_filtered_subscription_is_still_delivered(organization) -> None:
    filtered = subscription(organization, ["system.ping"], {"data": {"never": "there"}})
    with transaction.atomic():
        ping = recorded(organization_id=organization.id, event_type="system.ping", data={}, recipient_id=filtered.id)

    relay_pending(batch_size=100)

    assert delivered_events(filtered) == {ping.id}


def test_an_event_whose_body_jsonb_cannot_hold_matches_no_filter_and_the_batch_goes_on(organization) -> None:
    filtered = subscription(organization, ["person.*"], {"type": "person.created"})
    unfiltered = subscription(organization, ["person.*"])
    with transaction.atomic():
        nul = recorded(organization_id=organization.id, event_type="person.created", data={"name": "a\x00b"})
        plain = recorded(organization_id=organization.id, event_type="person.created", data={"name": "ab"})
    assert "\\u0000" in Event.objects.get(pk=nul.id).body

    result = relay_pending(batch_size=100)

    assert result.events == 2
    assert delivered_events(filtered) == {plain.id}
    assert delivered_events(unfiltered) == {nul.id, plain.id}


def test_with_filters_the_fan_out_is_still_one_statement(organization, django_assert_num_queries) -> None:
    subscription(organization, ["*"], BUSY)
    subscription(organization, ["*"])
    availability_changed(organization, "busy")
    availability_changed(organization, "away")

    # Claim, quota, the bodies of filtered events and fan-out: one statement (plus the test's SAVEPOINT and RELEASE).
    with django_assert_num_queries(1 + 2):
        batch = relay_batch(batch_size=100)

    assert (batch.events, batch.deliveries) == (2, 3)


def test_only_events_a_filtered_subscription_wants_by_type_have_their_body_read(organization) -> None:
    subscription(organization, ["*"])
    subscription(organization, ["person.*"], {"type": "person.created"})  # wants no availability event
    availability_changed(organization, "busy")
    before = _event_reads()

    relay_pending(batch_size=100)

    assert _event_reads() == before  # the unfiltered path never touches events_event
    subscription(organization, ["availability.*"], BUSY)
    availability_changed(organization, "busy")

    relay_pending(batch_size=100)

    assert _event_reads() > before


def _event_reads() -> int:
    """Scans of events_event's partitions in this transaction (the test's), sequential or by index."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_xact_user_tables
               WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events_event'::regclass)"""
        )
        return int(cursor.fetchone()[0])


def test_a_replay_honours_the_filter_as_it_is_now(organization) -> None:
    sub = subscription(organization, ["availability.*"])
    busy = availability_changed(organization, "busy")
    availability_changed(organization, "away")
    Subscription.objects.filter(pk=sub.pk).update(filter=BUSY)
    sub.refresh_from_db()
    since, until = timezone.now() - timedelta(minutes=5), timezone.now() + timedelta(minutes=1)

    counted = events_replay(subscription=sub, since=since, until=until, dry_run=True)
    replayed = events_replay(subscription=sub, since=since, until=until)

    assert (counted.events, replayed.events) == (1, 1)
    assert delivered_events(sub) == {busy.id}


def test_what_a_disabled_subscription_missed_is_counted_through_its_filter(organization) -> None:
    now = timezone.now()
    sub = subscription(organization, ["availability.*"], BUSY, active=False)
    Subscription.objects.filter(pk=sub.pk).update(disabled_at=now - timedelta(minutes=1))
    sub.refresh_from_db()
    for status in ["busy", "away", "busy"]:
        availability_changed(organization, status)

    missed = missed_while_disabled(sub, now=timezone.now())

    assert missed is not None
    assert missed["events"] == 2


CONTAINMENT = [
    # (filter, event, matches): PostgreSQL's jsonb @>, as documented in docs/webhooks.md
    ({"data": {"a": 1}}, {"data": {"a": 1, "b": 2}, "type": "x"}, True),  # other keys are ignored
    ({"data": {"a": 1}}, {"data": {"a": 2}}, False),
    ({"data": {"a": {"b": "c"}}}, {"data": {"a": {"b": "c", "d": 1}}}, True),  # nested objects
    ({"data": {"a": 1}}, {"data": {"a": 1.0}}, True),  # numbers compare by value
    ({"data": {"a": "1"}}, {"data": {"a": 1}}, False),  # a string is not a number
    ({"data": {"a": None}}, {"data": {"a": None}}, True),  # null matches null only
    ({"data": {"a": None}}, {"data": {}}, False),  # not a missing key
    ({"data": {"tags": ["vip"]}}, {"data": {"tags": ["new", "vip"]}}, True),  # arrays: every element found
    ({"data": {"tags": ["vip", "gold"]}}, {"data": {"tags": ["vip"]}}, False),
    ({"data": {"tags": []}}, {"data": {"tags": ["vip"]}}, True),  # the empty array is in every array
    ({"data": {"tags": "vip"}}, {"data": {"tags": ["vip"]}}, False),  # only at the top level may a scalar match
    ({"data": {"pets": [{"type": "dog"}]}}, {"data": {"pets": [{"name": "Rex", "type": "dog"}]}}, True),
    ({"data": {"current_status": "busy"}}, {"data": {"current_status": "Busy"}}, False),  # case matters
]


@pytest.mark.parametrize(("payload_filter", "event", "matches"), CONTAINMENT)
def test_containment_is_postgresql_s(payload_filter, event, matches) -> None:
    assert filter_matches(payload_filter=payload_filter, event=event) is matches


def test_no_filter_matches_everything() -> None:
    assert filter_matches(payload_filter=None, event={"anything": 1}) is True
