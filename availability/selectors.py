"""Reading availability: a user without a row yet reads as offline, never seen."""

from typing import Any

from availability.models import Status, UserAvailability
from availability.state import organization_of
from sapien.core.models import Organization, User


def never_seen(user: User) -> UserAvailability:
    """How a user with no availability row yet reads (not saved)."""
    return UserAvailability(user_id=user.pk, organization_id=organization_of(user), status=Status.OFFLINE)


def availability_of(user: User) -> UserAvailability:
    return UserAvailability.objects.filter(user_id=user.pk).first() or never_seen(user)


def availabilities_of(organization: Organization, user_ids: list[Any]) -> list[UserAvailability]:
    users = User.objects.filter(organization=organization, pk__in=user_ids).order_by("email")
    states = {state.user_id: state for state in UserAvailability.objects.filter(user_id__in=[u.pk for u in users])}
    return [states.get(user.pk) or never_seen(user) for user in users]
