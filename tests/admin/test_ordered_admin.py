"""Operators turn ordered delivery on and off in the admin, filter by it, and see a delivery's ordering key."""

import pytest
from django.test import Client

from deliveries.models import Delivery, DeliveryStatus
from sapien.events.outbox import record_event
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


def change_form(subscription: Subscription, **fields: str) -> dict[str, object]:
    return {
        "organization": subscription.organization_id, "callback_url": subscription.callback_url,
        "events": "availability.*", "secret": "", "active": "on", "description": "", "disabled_reason": "", **fields,
    }  # fmt: skip


@pytest.fixture
def subscription(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def test_the_admin_turns_ordered_delivery_on_and_off(admin_client: Client, subscription: Subscription) -> None:
    url = f"/admin/subscriptions/subscription/{subscription.id}/change/"
    assert 'name="ordered"' in admin_client.get(url).content.decode()

    assert admin_client.post(url, change_form(subscription, ordered="on")).status_code == 302
    subscription.refresh_from_db()
    assert subscription.ordered is True

    assert admin_client.post(url, change_form(subscription)).status_code == 302  # an unticked box
    subscription.refresh_from_db()
    assert subscription.ordered is False


def test_the_subscription_list_filters_by_ordered(admin_client: Client, organization, subscription) -> None:
    Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/ordered", events=["*"], secret="s" * 20,
        ordered=True,
    )  # fmt: skip

    everything = admin_client.get("/admin/subscriptions/subscription/").content.decode()
    ordered = admin_client.get("/admin/subscriptions/subscription/", {"ordered__exact": "1"}).content.decode()

    assert ">https://hooks.example.com/</a>" in everything and ">https://hooks.example.com/ordered</a>" in everything
    assert ">https://hooks.example.com/ordered</a>" in ordered
    assert ">https://hooks.example.com/</a>" not in ordered


def test_a_deliverys_ordering_key_is_shown_and_cannot_be_edited(admin_client: Client, organization) -> None:
    subscription = Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20,
        ordered=True,
    )  # fmt: skip
    event = record_event(organization_id=organization.id, event_type="availability.changed", data={"user_id": "u-1"})
    assert event is not None
    delivery = Delivery.objects.create(
        organization=organization, event=event, event_created_at=event.created_at, event_type=event.type,
        subscription=subscription, status=DeliveryStatus.PENDING, ordering_key="user:u-1",
    )  # fmt: skip

    page = admin_client.get(f"/admin/deliveries/delivery/{delivery.id}/change/").content.decode()

    assert "user:u-1" in page
    assert 'name="ordering_key"' not in page
