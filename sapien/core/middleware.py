"""Request-wide concerns: the correlation id, the event source, the body size limit and JSON body limits;
and sessions, sign-in and messages for the pages a browser opens, and for nothing else.

The quota headers, which read the event quota, are ``sapien.events.middleware``: core imports no app.
"""

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from sapien.core.context import bind_actor, bind_context, clear_context, current_context
from sapien.core.errors import error_body
from sapien.core.parsers import MalformedJSON, parse_and_keep_json_body
from sapien.core.signals import user_token_used
from sapien.core.tracing import valid_traceparent

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Binds the correlation id (``X-Request-ID`` when sane, else a new one) and echoes it back; binds the request's
    ``traceparent`` when valid (an invalid one is ignored), for its events to keep (``sapien.core.tracing``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.META.get("HTTP_X_REQUEST_ID", "")  # not request.headers, which parses every header
        source = "admin" if request.path.startswith("/admin/") else "api"
        bind_context(
            correlation_id=supplied if _REQUEST_ID.match(supplied) else None,
            source=source,
            traceparent=valid_traceparent(request.META.get("HTTP_TRACEPARENT")),
        )
        try:
            correlation_id = current_context().correlation_id
            response = self.get_response(request)
            response["X-Request-ID"] = correlation_id
            return response
        finally:
            clear_context()


# Requests of programs, with a bearer token or none: no cookie, so no session, signed-in user or messages.
MACHINE_PATHS = ("/api/", "/health", "/metrics")


class BrowserOnly(MiddlewareMixin):
    """Runs the Django middleware it is mixed into for browser pages only (the admin, sign-in, OAuth
    authorization), never for ``MACHINE_PATHS``, where it would only cost time: most of the middleware
    stack's, for an API request. CSRF checks and X-Frame-Options stay for every request (they cost little)."""

    def __call__(self, request: HttpRequest) -> Any:
        if request.path_info.startswith(MACHINE_PATHS):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(BrowserOnly, sessions_middleware.SessionMiddleware):
    pass


class AuthenticationMiddleware(BrowserOnly, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(BrowserOnly, messages_middleware.MessageMiddleware):
    pass


class AdminEventContextMiddleware:
    """Changes made in the Django admin name the signed-in operator as their cause."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.path.startswith("/admin/") and user is not None and user.is_authenticated:
            bind_actor(str(user.pk), source="admin")
        return self.get_response(request)


class BodySizeLimitMiddleware:
    """Refuses an oversize body with 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return JsonResponse(
                error_body(
                    "payload_too_large",
                    f"The request body is {length} bytes; the limit is {settings.MAX_REQUEST_BODY_BYTES}.",
                ),
                status=413,
            )
        return self.get_response(request)


class JSONBodyMiddleware:
    """Refuses a JSON body that is not JSON, nests too deep or is not Unicode with 400, before any view reads it.

    Must come after ``BodySizeLimitMiddleware``, so that an oversize body is refused unread.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            parse_and_keep_json_body(request)
        except MalformedJSON as exc:
            return JsonResponse(error_body("malformed_request", str(exc)), status=400)
        return self.get_response(request)


class UserActivityMiddleware:
    """A request made with a user's token is activity, unless its view says it is not (a keep-alive)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        token = getattr(request, "user_token", None)
        match = request.resolver_match
        view_class = getattr(match.func, "cls", None) if match else None
        if token is not None and response.status_code < 400 and getattr(view_class, "counts_as_activity", True):
            user_token_used.send(sender=type(self), user=token.user, token=token)
        return response
