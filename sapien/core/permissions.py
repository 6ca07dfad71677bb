"""Scope checks: a missing or bad token is 401, a token without the scope is 403.

Views name their scopes with ``read_scope`` (safe methods) and ``write_scope``
(everything else); an action can override both with ``action_scopes``.
"""

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request


def required_scope(request: Request, view: Any) -> str | None:
    action_scopes: dict[str, str] = getattr(view, "action_scopes", {})
    action = getattr(view, "action", None)
    if action in action_scopes:
        return action_scopes[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_scope", None)
    return getattr(view, "write_scope", None)


class HasRequiredScope(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if token is None or getattr(request, "organization", None) is None:
            raise exceptions.NotAuthenticated()
        scope = required_scope(request, view)
        if scope is None:
            return True
        if not token.allow_scopes([scope]):  # type: ignore[union-attr]
            raise exceptions.PermissionDenied(f"This token lacks the '{scope}' scope.")
        return True


class UserTokenRequired(BasePermission):
    """For endpoints about "me": the token must have been issued to a user."""

    message = "This endpoint needs a token issued to a user, not a client token."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.user is not None and getattr(request.user, "is_authenticated", False)
