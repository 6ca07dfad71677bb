"""Bearer-token authentication from the ``Authorization`` header alone, fixing the caller's organization.

``request.organization`` is the one place every query is scoped from: the client's organization for a
machine token, the user's for a user token.

A token travels only in the header (docs/api.md, "Authentication"): one in the query string or a form
body is refused with 401 ``token_in_url``, valid or not. Authentication never parses a JSON body: the
view does, later, within the limits of ``sapien.core.parsers``. django-oauth-toolkit issues and revokes
the tokens (``/oauth/*``); checking one here is one query on its unique checksum, saved for the next
``OAUTH_TOKEN_CACHE_SECONDS`` by ``RecentTokens``.
"""

import hashlib
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from oauth2_provider.models import AccessToken
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from sapien.core.context import bind_actor
from sapien.core.models import Application, Organization, User

TOKEN_PARAMETER = "access_token"  # noqa: S105  # a parameter name (RFC 6750 §2.2, §2.3), not a secret
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
INVALID_TOKEN = "The access token is invalid, expired or revoked."  # noqa: S105  # a message


class TokenNotInHeader(exceptions.AuthenticationFailed):
    """A bearer token sent in the query string or a form body: refused, whether or not it is valid."""

    default_code = "token_in_url"
    default_detail = (
        "Send the access token in the 'Authorization: Bearer <token>' header, never in the URL or the request body."
    )


def token_checksum(token: str) -> str:
    """What django-oauth-toolkit stores and looks a token up by (``AccessToken.token_checksum``)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def access_token_of(checksum: str) -> AccessToken | None:
    """The token with its client, the client's organization and its user: one query on DOT's unique checksum."""
    # A slice, not first(): the checksum is unique, and first()'s ORDER BY only costs compiling.
    tokens = AccessToken.objects.select_related("application__organization", "user").filter(token_checksum=checksum)
    return next(iter(tokens[:1]), None)


class RecentTokens:
    """Tokens this process read within the last ``OAUTH_TOKEN_CACHE_SECONDS`` (0: none), by checksum.

    A hit saves the token's query. What it costs: a token revoked through another process is still taken
    for up to that long (docs/api.md, "Authentication"); expiry is compared at every use all the same. A
    token saved or deleted in this process (its revocation) is forgotten at once, and every token when an
    organization, a client or a user is saved or deleted here. At most ``MAX_TOKENS``, the oldest go first.
    The tokens and what they hold are shared by the requests that use them: read them, never change them.
    """

    MAX_TOKENS = 1024
    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[float, AccessToken]] = {}
        self._writing = threading.Lock()  # reads take no lock: one dict lookup is atomic

    def get(self, checksum: str) -> AccessToken | None:
        entry = self._tokens.get(checksum)
        if entry is None or self.clock() - entry[0] >= settings.OAUTH_TOKEN_CACHE_SECONDS:
            return None
        return entry[1]

    def put(self, checksum: str, token: AccessToken, *, read_at: float) -> None:
        """``read_at``: ``clock()`` before the query that found the token, where its time starts."""
        if settings.OAUTH_TOKEN_CACHE_SECONDS <= 0:
            return
        with self._writing:
            self._tokens.pop(checksum, None)
            while len(self._tokens) >= self.MAX_TOKENS:
                del self._tokens[next(iter(self._tokens))]
            self._tokens[checksum] = (read_at, token)

    def forget(self, checksum: str | None) -> None:
        """Forgets one token; every token when ``checksum`` is unknown."""
        with self._writing:
            if checksum is None:
                self._tokens.clear()
            else:
                self._tokens.pop(checksum, None)

    def clear(self) -> None:
        self.forget(None)


recent_tokens = RecentTokens()


@receiver([post_save, post_delete], sender=AccessToken, dispatch_uid="sapien.core.auth.forget_token")
def forget_token(sender: type[AccessToken], instance: AccessToken, **kwargs: Any) -> None:
    recent_tokens.forget(vars(instance).get("token_checksum"))  # vars(): a deferred field is no query


def forget_every_token(sender: type[Model], **kwargs: Any) -> None:
    """What cached tokens hold (a client, an organization, a user) changed here: none is kept."""
    recent_tokens.clear()


for _holder in (Application, Organization, User):
    for _signal in (post_save, post_delete):
        _signal.connect(forget_every_token, sender=_holder, dispatch_uid=f"sapien.core.auth.{_holder.__name__}")


def valid_token(credentials: str) -> AccessToken | None:
    """The token of ``credentials`` if it is valid (of a client, not expired), from ``recent_tokens`` or its query."""
    checksum = token_checksum(credentials)
    token = recent_tokens.get(checksum)
    if token is None:
        read_at = recent_tokens.clock()
        token = access_token_of(checksum)
        if token is None or token.application is None:
            return None
        recent_tokens.put(checksum, token, read_at=read_at)
    return token if token.is_valid() else None


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
        token = valid_token(credentials)
        if token is None:
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
