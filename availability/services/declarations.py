"""Declarations: what the user (``manual``) or an operator (``system_override``) wants shown.

Each service locks the user's row before it writes the declaration (the one lock
order of ``availability.state``), then recomputes, naming the declaration's trigger.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from availability.models import DECLARATION_TRIGGER, Declaration, DeclarationKind, Trigger, UserAvailability
from availability.state import locked_state, organization_of, recompute
from sapien.core.errors import ApplicationError, Conflict
from sapien.core.models import User


def _expiry_in_future(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise ApplicationError(
            "expires_at must be in the future.",
            code="validation_error",
            details={"expires_at": ["Must be in the future."]},
        )


def _refuse_under_override(user: User, now: datetime) -> None:
    """A manual change while an override is in force is a 409 (docs/availability.md, "Errors")."""
    override = Declaration.objects.filter(user_id=user.pk, kind=DeclarationKind.SYSTEM_OVERRIDE).first()
    if override is not None and (override.expires_at is None or override.expires_at > now):
        raise Conflict(
            "An administrator's override is in force; your status cannot change until it is lifted.",
            code="override_in_force",
            details={"override_status": override.status, "expires_at": override.expires_at},
        )


@transaction.atomic
def manual_status_set(
    *,
    user: User,
    status: str,
    custom_message: str = "",
    expires_at: datetime | None = None,
    context: dict[str, Any] | None = None,
) -> UserAvailability:
    """The user declares their status; refused with 409 while an override is in force."""
    now = timezone.now()
    _expiry_in_future(expires_at, now)
    state = locked_state(user)
    _refuse_under_override(user, now)
    Declaration.objects.update_or_create(
        user_id=user.pk, kind=DeclarationKind.MANUAL,
        defaults={"organization_id": organization_of(user), "status": status, "custom_message": custom_message,
                  "expires_at": expires_at, "actor_id": str(user.pk)},
    )  # fmt: skip
    recompute(state, trigger=Trigger.MANUAL, source="api", actor_id=str(user.pk), context=context, now=now)
    return state


@transaction.atomic
def manual_status_clear(*, user: User, context: dict[str, Any] | None = None) -> UserAvailability:
    """The user clears their manual declaration; refused with 409 while an override is in force."""
    state = locked_state(user)
    _refuse_under_override(user, timezone.now())
    Declaration.objects.filter(user_id=user.pk, kind=DeclarationKind.MANUAL).delete()
    recompute(state, trigger=Trigger.MANUAL, source="api", actor_id=str(user.pk), context=context)
    return state


@transaction.atomic
def declaration_set(
    *,
    user: User,
    kind: str,
    status: str,
    actor_id: str,
    source: str,
    custom_message: str = "",
    expires_at: datetime | None = None,
) -> tuple[UserAvailability, Declaration]:
    """Declares ``kind`` for the user on an operator's behalf (no refusal under an override), and recomputes.

    Takes the user's row lock before it writes the declaration, as every path here does:
    one lock order for the same rows, so no two paths can deadlock on them.
    """
    trigger = DECLARATION_TRIGGER[kind]
    now = timezone.now()
    _expiry_in_future(expires_at, now)
    state = locked_state(user)
    declaration, _ = Declaration.objects.update_or_create(
        user_id=user.pk, kind=kind,
        defaults={"organization_id": organization_of(user), "status": status, "custom_message": custom_message,
                  "expires_at": expires_at, "actor_id": actor_id},
    )  # fmt: skip
    recompute(state, trigger=trigger, source=source, actor_id=actor_id, now=now)
    return state, declaration


@transaction.atomic
def declaration_lift(*, user: User, kind: str, actor_id: str, source: str) -> UserAvailability:
    """Removes the user's ``kind`` declaration, if any, and recomputes; the lock first, like ``declaration_set``."""
    trigger = DECLARATION_TRIGGER[kind]
    state = locked_state(user)
    Declaration.objects.filter(user_id=user.pk, kind=kind).delete()
    recompute(state, trigger=trigger, source=source, actor_id=actor_id)
    return state


def override_set(
    *, user: User, status: str, actor_id: str, custom_message: str = "", expires_at: datetime | None = None
) -> UserAvailability:
    """An operator's override through the API (``source: api``); see ``declaration_set``."""
    state, _ = declaration_set(
        user=user, kind=DeclarationKind.SYSTEM_OVERRIDE, status=status, actor_id=actor_id, source="api",
        custom_message=custom_message, expires_at=expires_at,
    )  # fmt: skip
    return state


def override_lift(*, user: User, actor_id: str) -> UserAvailability:
    """Lifts the override through the API (``source: api``); see ``declaration_lift``."""
    return declaration_lift(user=user, kind=DeclarationKind.SYSTEM_OVERRIDE, actor_id=actor_id, source="api")
