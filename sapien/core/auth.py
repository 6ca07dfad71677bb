"""Bearer-token authentication that also fixes the caller's organization.

``request.organization`` is the one place every query is scoped from: the
client's organization for a machine token, the user's for a user token.
"""

from typing import Any

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions
from rest_framework.request import Request

from sapien.events.context import bind_actor


class OrganizationTokenAuthentication(OAuth2Authentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is None:
            if request.headers.get("Authorization", "").lower().startswith("bearer "):
                raise exceptions.AuthenticationFailed("The access token is invalid, expired or revoked.")
            return None
        user, token = result
        application = token.application
        if application is None:
            return None
        # On both the DRF request and Django's, so that middleware sees it too.
        request.organization = request._request.organization = application.organization  # type: ignore[attr-defined]
        bind_actor(str(user.pk) if user is not None else application.client_id)
        if user is not None:
            request._request.user_token = token  # type: ignore[attr-defined]  # for UserActivityMiddleware
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="sapien"'
