"""One JSON error shape for every 4xx and 5xx.

``{"error": {"code": "validation_error", "message": "…", "details": {...}}}``:
``code`` is machine-readable and stable, ``message`` is for people, ``details``
names the offending fields when there are any.
"""

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status

if TYPE_CHECKING:  # imported by the handler: services raise these errors in workers, which load no API views
    from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(exceptions.APIException):
    """Base of the errors that services raise on purpose."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "The request cannot be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message or self.default_detail, code or self.default_code)
        self.details = details


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class LimitExceeded(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "limit_exceeded"
    default_detail = "A limit of your plan has been reached."


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


_CODES_BY_CLASS: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def _message_of(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _message_of(detail[0])
    if isinstance(detail, dict):
        return "The request has invalid fields."
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> "Response | None":
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DataError):
        exc = exceptions.ValidationError("A value is out of the range the database accepts.")
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        set_rollback()  # the answer is a 500 response, not a raised exception: undo the request's writes
        return Response(
            error_body("internal_error", "An unexpected error occurred."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, ApplicationError):
        code, details = str(getattr(exc.detail, "code", exc.default_code)), exc.details
    else:
        # DRF's own exceptions by class; a subclass of one by its own ``default_code``.
        code = _CODES_BY_CLASS.get(type(exc)) or str(getattr(exc.detail, "code", None) or exc.default_code)
        details = exc.detail if isinstance(exc, exceptions.ValidationError) else None
    if isinstance(details, list):
        details = {"non_field_errors": details}
    message = _message_of(exc.detail)
    response.data = error_body(code, message, details)
    return response


def json_error_view(status_code: int, code: str, message: str):
    """Django-level handlers (unknown URL, uncaught error outside DRF) answer in the same shape."""

    def view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
        return JsonResponse(error_body(code, message), status=status_code)

    return view
