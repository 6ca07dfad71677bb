"""Operators in the Django admin: every page renders, the secret stays masked, redelivery works."""

import pytest
from django.test import Client
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from sapien.entities.models import Person
from sapien.events.outbox import record_event
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db
SECRET = "an-admin-must-never-see-this"


@pytest.fixture
def failed_delivery(organization):
    subscription = Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret=SECRET
    )
    event = record_event(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
    assert event is not None
    delivery = Delivery.objects.create(
        organization=organization, event=event, event_created_at=event.created_at, event_type=event.type,
        subscription=subscription, status=DeliveryStatus.FAILED, attempt_count=4,
    )  # fmt: skip
    DeliveryAttempt.objects.create(
        delivery=delivery, event_created_at=event.created_at, number=4, started_at=timezone.now(), duration_ms=40, status_code=503, succeeded=False,
        response_excerpt="try later",
    )  # fmt: skip
    return delivery


@pytest.mark.parametrize(
    "path",
    [
        "/admin/", "/admin/core/organization/", "/admin/core/user/", "/admin/core/application/",
        "/admin/entities/person/", "/admin/entities/pet/", "/admin/entities/toy/", "/admin/subscriptions/subscription/",
        "/admin/deliveries/delivery/", "/admin/events/event/", "/admin/deliveries/blob/",
        "/admin/availability/useravailability/", "/admin/availability/declaration/",
        "/admin/availability/connection/", "/admin/availability/availabilityprofile/",
    ],
)  # fmt: skip
def test_every_admin_list_renders(admin_client: Client, failed_delivery, path: str) -> None:
    response = admin_client.get(path)

    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_the_subscription_page_masks_the_secret_and_keeps_it_when_left_empty(
    admin_client: Client, failed_delivery
) -> None:
    subscription = failed_delivery.subscription
    page = admin_client.get(f"/admin/subscriptions/subscription/{subscription.id}/change/")
    assert page.status_code == 200
    assert SECRET not in page.content.decode()

    saved = admin_client.post(
        f"/admin/subscriptions/subscription/{subscription.id}/change/",
        {
            "organization": subscription.organization_id, "callback_url": subscription.callback_url,
            "events": "person.*", "secret": "", "active": "on", "description": "changed", "disabled_reason": "",
        },
    )  # fmt: skip

    assert saved.status_code == 302
    subscription.refresh_from_db()
    assert subscription.secret == SECRET
    assert subscription.description == "changed"


def test_a_delivery_page_shows_its_attempts(admin_client: Client, failed_delivery) -> None:
    page = admin_client.get(f"/admin/deliveries/delivery/{failed_delivery.id}/change/").content.decode()

    assert "try later" in page
    assert "503" in page
    assert SECRET not in page


def test_the_redeliver_action_starts_new_chains(admin_client: Client, failed_delivery) -> None:
    response = admin_client.post(
        "/admin/deliveries/delivery/", {"action": "redeliver", "_selected_action": [str(failed_delivery.id)]}
    )

    assert response.status_code == 302
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == DeliveryStatus.PENDING
    assert failed_delivery.attempt_count == 0


def test_an_entity_changed_in_the_admin_records_its_event(admin_client: Client, organization) -> None:
    person = Person.objects.create(organization=organization, name="Before")

    admin_client.post(
        f"/admin/entities/person/{person.id}/change/",
        {"organization": organization.id, "name": "After", "status": "active", "attributes": "{}"},
    )

    from sapien.events.models import Event

    updated = Event.objects.get(type="person.updated")
    assert updated.payload["changes"] == {"name": {"old": "Before", "new": "After"}}
    assert updated.payload["metadata"]["source"] == "admin"


def test_an_override_added_in_the_admin_takes_effect_at_once(admin_client: Client, organization) -> None:
    from availability.models import UserAvailability
    from sapien.core.models import User

    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)

    response = admin_client.post(
        "/admin/availability/declaration/add/",
        {"user": user.pk, "kind": "system_override", "status": "do_not_disturb", "custom_message": "Leave"},
    )

    assert response.status_code == 302
    state = UserAvailability.objects.get(user=user)
    assert (state.status, state.custom_message, state.trigger) == ("do_not_disturb", "Leave", "system_override")
    assert state.event_due_at is not None  # its events are on their way
    assert admin_client.get(f"/admin/availability/useravailability/{user.pk}/change/").status_code == 200
