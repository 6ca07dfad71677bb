"""Creating, changing and deleting subscriptions, within the tier's limits."""

import secrets
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sapien.core.errors import ApplicationError, LimitExceeded
from sapien.core.models import Organization
from sapien.core.tiers import limits_for
from sapien.events.envelope import isoformat_z
from sapien.events.examples import record_example
from sapien.events.outbox import record_event
from sapien.events.selectors import count_matching_events
from subscriptions.custom_headers import InvalidHeaders, checked_headers
from subscriptions.health import (
    failing_notice_threshold,
    probe_changes,
    probe_on_disable,
    subscriptions_failing_announce,
)
from subscriptions.models import Subscription
from subscriptions.payload_filter import InvalidFilter, checked_filter
from subscriptions.url_safety import UnsafeCallbackURL, check_callback_url


def generate_secret() -> str:
    return f"whsk_{secrets.token_urlsafe(32)}"


def _checked_callback_url(url: str) -> str:
    try:
        check_callback_url(url)
    except UnsafeCallbackURL as exc:
        raise ApplicationError(str(exc), code="invalid_callback_url", details={"callback_url": [str(exc)]}) from exc
    return url


def _checked_headers(headers: Any) -> dict[str, str]:
    try:
        return checked_headers(headers)
    except InvalidHeaders as exc:
        raise ApplicationError(str(exc), code="invalid_headers", details={"headers": [str(exc)]}) from exc


def _checked_filter(payload_filter: Any) -> dict[str, Any] | None:
    try:
        return checked_filter(payload_filter)
    except InvalidFilter as exc:
        raise ApplicationError(str(exc), code="invalid_filter", details={"filter": [str(exc)]}) from exc


@transaction.atomic
def subscription_create(
    *,
    organization: Organization,
    callback_url: str,
    events: list[str],
    secret: str | None = None,
    active: bool = True,
    description: str = "",
    headers: dict[str, str] | None = None,
    filter: dict[str, Any] | None = None,  # the API's name for it
    ordered: bool = False,
    probe_when_disabled: bool = False,
    rate_limit_per_second: int | None = None,
    max_in_flight: int | None = None,
) -> Subscription:
    payload_filter = _checked_filter(filter)
    headers = _checked_headers(headers or {})
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
        headers=headers,
        filter=payload_filter,
        ordered=ordered,
        probe_when_disabled=probe_when_disabled,
        rate_limit_per_second=rate_limit_per_second,
        max_in_flight=max_in_flight,
    )


@transaction.atomic
def subscription_update(*, subscription: Subscription, **changes: Any) -> Subscription:
    if "callback_url" in changes:
        _checked_callback_url(changes["callback_url"])
    if "headers" in changes:  # the whole map: what is not given is removed
        changes["headers"] = _checked_headers(changes["headers"])
    if "filter" in changes:  # the whole document, or null: the relay applies it from its next batch
        changes["filter"] = _checked_filter(changes["filter"])
    probe = probe_changes(subscription, changes, now=timezone.now())  # before the re-enabling below changes it
    if changes.get("active") is True and not subscription.active:
        changes.update(disabled_reason="", disabled_at=None, consecutive_failures=0, failing_since=None)
    changes.update(probe)
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


@transaction.atomic
def subscription_send_example(*, subscription: Subscription, event_type: str = "system.ping") -> Any:
    """Records ``event_type``'s catalog example addressed to this subscription alone (``system.ping``: a ping)."""
    if event_type == "system.ping":
        return subscription_ping(subscription=subscription)
    return record_example(
        organization_id=subscription.organization_id, event_type=event_type, recipient_id=subscription.id
    )


FAILURE_COUNT_SQL = """
UPDATE subscriptions_subscription
SET consecutive_failures = consecutive_failures + %s, failing_since = coalesce(failing_since, %s)
WHERE id = %s
RETURNING active AND failing_notified_at IS NULL AND consecutive_failures >= %s
"""


def subscription_health_record(
    *, failed: Counter[Any], now: datetime, reasons: Mapping[Any, str] | None = None
) -> None:
    """Counts deliveries that ended failed in a row; tells the organization once a run reaches the failing
    threshold (``subscriptions/health.py``, ``reasons`` being each one's last failure); disables a subscription
    past the limit and period.

    A success resets the count: the statement recording the outcomes does that (``deliveries/claims.py``), and
    this runs after it, inside the same transaction.
    """
    if not failed:
        return
    crossed = []  # runs that reached the failing threshold and whose organization was not told yet
    with connection.cursor() as cursor:
        for subscription_id, count in failed.items():
            cursor.execute(FAILURE_COUNT_SQL, [count, now, subscription_id, failing_notice_threshold()])
            row = cursor.fetchone()
            if row and row[0]:
                crossed.append(subscription_id)
    if crossed:
        subscriptions_failing_announce(subscription_ids=crossed, now=now, reasons=reasons or {})
    limit = settings.ESL_DISABLE_AFTER_FAILURES
    period = timedelta(seconds=settings.ESL_DISABLE_AFTER_SECONDS)
    to_disable = Subscription.objects.select_for_update().filter(
        id__in=list(failed), active=True, consecutive_failures__gte=limit, failing_since__lte=now - period
    )
    for subscription in to_disable:
        reason = (
            f"Disabled after {subscription.consecutive_failures} consecutive failed deliveries "
            f"since {subscription.failing_since:%Y-%m-%d %H:%M} UTC."
        )
        subscription_disable(subscription=subscription, reason=reason, now=now)


def subscription_disable(*, subscription: Subscription, reason: str, now: datetime) -> None:
    """Disables it with a visible reason and tells the organization's other subscriptions."""
    subscription.active = False
    subscription.disabled_reason = reason
    subscription.disabled_at = now
    probe_fields = probe_on_disable(subscription, now=now)
    subscription.save(update_fields=["active", "disabled_reason", "disabled_at", *probe_fields, "updated_at"])
    record_event(
        organization_id=subscription.organization_id,
        event_type="system.subscription.disabled",
        data={
            "subscription_id": str(subscription.id),
            "callback_url": subscription.callback_url,
            "reason": reason,
            "consecutive_failures": subscription.consecutive_failures,
            "disabled_at": isoformat_z(now),
        },
    )


@transaction.atomic
def subscription_rotate_secret(*, subscription: Subscription, secret: str | None = None) -> Subscription:
    """A new secret now; the old one keeps signing (beside it) for ``ESL_SECRET_ROTATION_GRACE`` seconds."""
    now = timezone.now()
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_expires_at = now + timedelta(seconds=settings.ESL_SECRET_ROTATION_GRACE_SECONDS)
    subscription.secret = secret or generate_secret()
    subscription.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return subscription


def missed_while_disabled(subscription: Subscription, *, now: datetime) -> dict[str, Any] | None:
    """What a re-enabled subscription missed, from its first failed delivery (or its disabling by hand), with
    the replay that would catch it up: retention keeps all of it until then (deliveries/retention.py)."""
    if subscription.disabled_at is None:
        return None
    since = min(subscription.failing_since or subscription.disabled_at, subscription.disabled_at)
    count = count_matching_events(
        organization_id=subscription.organization_id, patterns=subscription.events, since=since, until=now,
        contains=subscription.filter,
    )  # fmt: skip
    return {
        "events": count,
        "since": since,
        "until": now,
        "replay": f"/api/v1/subscriptions/{subscription.id}/replay",
    }
