"""The raw SQL that makes new deliveries names the model's columns, every required one, and makes valid rows."""

import pytest
from django.db import connection, transaction

from deliveries.models import Delivery, DeliveryStatus
from deliveries.new_deliveries import new_deliveries_sql, new_delivery_values
from sapien.events.outbox import record_event
from subscriptions.models import Subscription

COLUMNS = set(new_delivery_values(event="e", subscription_id="s", due_at="now()"))


def test_every_column_named_is_a_column_of_the_model() -> None:
    assert COLUMNS <= {field.column for field in Delivery._meta.concrete_fields}


def test_every_column_that_may_not_be_null_is_given_a_value() -> None:
    required = {field.column for field in Delivery._meta.concrete_fields if not field.null}

    assert required <= COLUMNS


@pytest.mark.django_db
def test_a_row_it_inserts_reads_back_as_a_pending_delivery_due_at_the_time_given(organization) -> None:
    subscription = Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )
    with transaction.atomic():
        event = record_event(organization_id=organization.id, event_type="system.ping", data={})
    assert event is not None

    sql = new_deliveries_sql(
        event="e", subscription_id="%(subscription)s", due_at="'2030-01-01T00:00:00Z'::timestamptz"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql + "FROM events_event e WHERE e.id = %(event)s", {"event": event.id, "subscription": subscription.id}
        )

    delivery = Delivery.objects.get(event=event, subscription=subscription)
    assert (delivery.status, delivery.attempt_count, delivery.last_error) == (DeliveryStatus.PENDING, 0, "")
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at.year == 2030
    assert delivery.claim_token is None and delivery.completed_at is None
    assert (delivery.event_created_at, delivery.event_type) == (event.created_at, "system.ping")
