"""Creating, changing and deleting subscriptions, within the tier's limits."""

import secrets
from typing import Any

from django.db import transaction

from sapien.core.errors import ApplicationError, LimitExceeded
from sapien.core.models import Organization
from sapien.core.tiers import limits_for
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from subscriptions.url_safety import UnsafeCallbackURL, check_callback_url


def generate_secret() -> str:
    return f"whsk_{secrets.token_urlsafe(32)}"


def _checked_callback_url(url: str) -> str:
    try:
        check_callback_url(url)
    except UnsafeCallbackURL as exc:
        raise ApplicationError(str(exc), code="invalid_callback_url", details={"callback_url": [str(exc)]}) from exc
    return url


@transaction.atomic
def subscription_create(
    *,
    organization: Organization,
    callback_url: str,
    events: list[str],
    secret: str | None = None,
    active: bool = True,
    description: str = "",
) -> Subscription:
    # Lock the organization row so two concurrent creations cannot both slip under the limit.
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    limit = limits_for(organization.tier).max_subscriptions
    if limit is not None and Subscription.objects.filter(organization=organization).count() >= limit:
        raise LimitExceeded(
            f"The {organization.tier} tier allows {limit} subscriptions; delete one or upgrade.",
            code="subscription_limit_reached",
            details={"limit": limit, "tier": organization.tier},
        )
    return Subscription.objects.create(
        organization=organization,
        callback_url=_checked_callback_url(callback_url),
        events=events,
        secret=secret or generate_secret(),
        active=active,
        description=description,
    )


@transaction.atomic
def subscription_update(*, subscription: Subscription, **changes: Any) -> Subscription:
    if "callback_url" in changes:
        _checked_callback_url(changes["callback_url"])
    if changes.get("active") is True:
        subscription.disabled_reason = ""
        changes["disabled_reason"] = ""
    for field, value in changes.items():
        setattr(subscription, field, value)
    subscription.save(update_fields=[*changes, "updated_at"])
    return subscription


def subscription_ping(*, subscription: Subscription) -> Any:
    """Records a ``system.ping`` addressed to this subscription alone."""
    return record_event(
        organization_id=subscription.organization_id,
        event_type="system.ping",
        data={"subscription_id": str(subscription.id), "message": "Ping from Sapien ESL."},
        recipient_id=subscription.id,
    )
