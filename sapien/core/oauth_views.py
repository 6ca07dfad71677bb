"""The OAuth endpoints: django-oauth-toolkit's views behind the parameter guard and the failure throttle.

Answers are in RFC 6749's shape (``{"error": …, "error_description": …}``), as the toolkit's
own: a refused parameter is ``invalid_request`` (400), a throttled attempt ``slow_down``
(429, RFC 8628's code for "poll less often", with ``Retry-After``).
"""

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider import views as oauth_views
from oauth2_provider.exceptions import FatalClientError
from oauthlib.oauth2.rfc6749.errors import InvalidClientIdError, InvalidRequestFatalError

from sapien.core import oauth_throttle
from sapien.core.oauth_guard import basic_credentials, refused_parameter

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def oauth_error(status: int, error: str, description: str) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"  # as the toolkit's own token answers (RFC 6749 §5.1)
    response["Pragma"] = "no-cache"
    return response


def _attempt(request: HttpRequest, *, password_grant: bool) -> oauth_throttle.TokenAttempt:
    credentials = basic_credentials(request)
    client_ids = (credentials[0] if credentials else "", request.POST.get("client_id", ""))
    return oauth_throttle.TokenAttempt(
        address=request.META.get("REMOTE_ADDR") or "",
        client_ids=tuple(dict.fromkeys(client_id for client_id in client_ids if client_id)),
        username=request.POST.get("username") if password_grant else None,
    )


def _error_code(response: HttpResponse) -> str | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _guarded(request: HttpRequest, *, password_grant: bool, answer: Callable[[], HttpResponse]) -> HttpResponse:
    """``answer()``, unless a parameter is refused or the attempt is throttled; counts it if it failed."""
    refusal = refused_parameter(request, basic_auth=True)
    if refusal is not None:
        return oauth_error(400, "invalid_request", refusal.description)
    attempt = _attempt(request, password_grant=password_grant)
    throttled = oauth_throttle.throttled(attempt)
    if throttled is not None:
        refused = oauth_error(
            429, "slow_down", f"Too many failed token requests; retry after {throttled.retry_after} seconds."
        )
        refused["Retry-After"] = str(throttled.retry_after)
        return refused
    response = answer()
    if 400 <= response.status_code < 500:
        oauth_throttle.record_failure(attempt, error=_error_code(response))
    return response


class TokenView(oauth_views.TokenView):
    """``POST /oauth/token``."""

    @method_decorator(sensitive_post_parameters("password", "client_secret"))
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("grant_type") == DEVICE_CODE_GRANT:
            # No client may use the device flow; the toolkit's view would look its code up first.
            return oauth_error(400, "unsupported_grant_type", "The device authorization grant is not offered.")
        password_grant = request.POST.get("grant_type") == "password"
        return _guarded(
            request,
            password_grant=password_grant,
            answer=lambda: super(TokenView, self).post(request, *args, **kwargs),
        )


class RevokeTokenView(oauth_views.RevokeTokenView):
    """``POST /oauth/revoke_token``: authenticates the client as the token endpoint does, so it is guarded alike."""

    @method_decorator(sensitive_post_parameters("client_secret", "token"))
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _guarded(
            request,
            password_grant=False,
            answer=lambda: super(RevokeTokenView, self).post(request, *args, **kwargs),
        )


class AuthorizationView(oauth_views.AuthorizationView):
    """``GET/POST /oauth/authorize``: a refused parameter is a fatal error, shown and never redirected.

    It is what the toolkit answers for an unknown client: nothing in such a request can be
    trusted to redirect to.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = refused_parameter(request, basic_auth=False)
        if refusal is None:
            return super().dispatch(request, *args, **kwargs)
        self.oauth2_data: dict[str, Any] = {}
        if refusal.parameter == "client_id":
            error = InvalidClientIdError()
        else:
            error = InvalidRequestFatalError(description=refusal.description)
        response: HttpResponse = self.error_response(FatalClientError(error=error), application=None)
        return response
