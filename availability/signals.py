"""OAuth sessions are connections: a token issued to a user opens one, its revocation closes it."""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from oauth2_provider.models import AccessToken

from availability.models import ConnectionKind
from availability.services.connections import (
    connection_close,
    connection_open_or_refresh,
    session_activity_touch,
    session_connection_id,
)
from sapien.core.signals import user_token_used


@receiver(post_save, sender=AccessToken)
def session_started(sender: type[AccessToken], instance: AccessToken, created: bool, **kwargs: Any) -> None:
    if not created or instance.user_id is None or kwargs.get("raw"):
        return
    with transaction.atomic():
        connection_open_or_refresh(
            user=instance.user,
            kind=ConnectionKind.SESSION,
            connection_id=session_connection_id(instance.pk),
            device_type="api",
            expires_at=instance.expires,
            source="oauth2_auth_endpoint",
        )


@receiver(post_delete, sender=AccessToken)
def session_ended(sender: type[AccessToken], instance: AccessToken, **kwargs: Any) -> None:
    if instance.user_id is None:
        return
    with transaction.atomic():
        connection_close(user_id=instance.user_id, connection_id=session_connection_id(instance.pk), reason="logout")


@receiver(user_token_used)
def session_used(sender: Any, user: Any, token: AccessToken, **kwargs: Any) -> None:
    session_activity_touch(user=user, token_id=token.pk)
