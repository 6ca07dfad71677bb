"""Schedule profiles: weekly windows that apply a status, owned by one user.

Each change records its ``availability.profile.*`` event and re-evaluates the
user's schedule at once, under the user's row lock, in the same transaction.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from availability import events
from availability.models import AvailabilityProfile
from availability.state import locked_state, organization_of, schedule_reevaluate
from sapien.core.models import User


def _profile_changed(profile: AvailabilityProfile, action: str) -> None:
    """Records the profile event and re-evaluates the user's schedule at once. Runs in a transaction."""
    events.record_profile_changed(profile, action=action)
    state = locked_state(User(pk=profile.user_id, organization_id=profile.organization_id))
    schedule_reevaluate(state, now=timezone.now())


@transaction.atomic
def profile_create(
    *, owner: User, name: str, timezone: str, rules: list[dict[str, Any]], active: bool = True
) -> AvailabilityProfile:
    """Creates a profile for ``owner``, a member of an organization."""
    profile = AvailabilityProfile.objects.create(
        organization_id=organization_of(owner), user=owner, name=name, timezone=timezone, rules=rules, active=active
    )
    _profile_changed(profile, "created")
    return profile


@transaction.atomic
def profile_update(*, profile: AvailabilityProfile, **changes: Any) -> AvailabilityProfile:
    """Sets the given fields (``name``, ``timezone``, ``rules``, ``active``) and saves the profile."""
    for field, value in changes.items():
        setattr(profile, field, value)
    profile.save()
    _profile_changed(profile, "updated")
    return profile


@transaction.atomic
def profile_delete(*, profile: AvailabilityProfile) -> None:
    """Deletes the profile; its event carries the profile as it was."""
    representation_holder = AvailabilityProfile(
        id=profile.id, organization_id=profile.organization_id, user_id=profile.user_id, name=profile.name,
        timezone=profile.timezone, rules=profile.rules, active=profile.active,
    )  # fmt: skip
    profile.delete()
    _profile_changed(representation_holder, "deleted")
