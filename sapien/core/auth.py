"""Bearer-token authentication from the ``Authorization`` header alone, fixing the caller's organization.

``request.organization`` is the one place every query is scoped from: the client's organization for a
machine token, the user's for a user token.

A token travels only in the header (docs/api.md, "Authentication"): one in the query string or a form
body is refused with 401 ``token_in_url``, valid or not. Authentication never parses a JSON body: the
view does, later, within the limits of ``sapien.core.parsers``. django-oauth-toolkit issues and revokes
the tokens (``/oauth/*``); checking one here is one query on its unique checksum.
"""

import hashlib
from typing import Any
from urllib.parse import parse_qsl

from oauth2_provider.models import AccessToken
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from sapien.core.context import bind_actor

TOKEN_PARAMETER = "access_token"  # noqa: S105  # a parameter name (RFC 6750 §2.2, §2.3), not a secret
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
INVALID_TOKEN = "The access token is invalid, expired or revoked."  # noqa: S105  # a message


class TokenNotInHeader(exceptions.AuthenticationFailed):
    """A bearer token sent in the query string or a form body: refused, whether or not it is valid."""

    default_code = "token_in_url"
    default_detail = (
        "Send the access token in the 'Authorization: Bearer <token>' header, never in the URL or the request body."
    )


def access_token_of(token: str) -> AccessToken | None:
    """The token with its client, the client's organization and its user: one query on DOT's unique checksum."""
    checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return (
        AccessToken.objects.select_related("application__organization", "user").filter(token_checksum=checksum).first()
    )


def bearer_credentials(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for no header or another scheme."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
    return parts[1]


def carries_token_outside_header(request: Request) -> bool:
    """A token in the query string, or in a form-encoded body (whose flat fields are all that is read)."""
    if TOKEN_PARAMETER in request.query_params:
        return True
    if request.content_type.split(";", 1)[0].strip().lower() != FORM_MEDIA_TYPE:
        return False
    body = request._request.body.decode("latin-1")  # the names are ASCII; their percent escapes decode as UTF-8
    return any(name == TOKEN_PARAMETER for name, _ in parse_qsl(body, keep_blank_values=True))


class OrganizationTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if carries_token_outside_header(request):
            raise TokenNotInHeader()
        credentials = bearer_credentials(request)
        if credentials is None:
            return None
        token = access_token_of(credentials)
        if token is None or not token.is_valid() or token.application is None:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        if token.resource and not token.allows_audience(request.build_absolute_uri(request.path)):
            raise exceptions.AuthenticationFailed("The access token is not valid for this resource.")  # RFC 8707
        application = token.application
        user = token.user
        # On both the DRF request and Django's, so that middleware sees it too.
        request.organization = request._request.organization = application.organization  # type: ignore[attr-defined]
        bind_actor(str(user.pk) if user is not None else application.client_id)
        if user is not None:
            request._request.user_token = token  # type: ignore[attr-defined]  # for UserActivityMiddleware
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="sapien"'
