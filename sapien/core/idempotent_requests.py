"""Every ``POST`` and ``PATCH`` under ``/api/`` honours ``Idempotency-Key`` (the rule: ``sapien.core.idempotency``).

Installed on DRF's ``APIView`` itself by the URLconf, so that every API view has it, today's and tomorrow's,
without calling it: the project has no base view, and a middleware runs outside the request's transaction
(``ATOMIC_REQUESTS`` wraps the view), where the answer could not commit with the write. The web process alone
installs it; workers and the relay load no views. Three of DRF's hooks, each calling the original first:

- ``initial``: after authentication, permissions and throttling (a replay is answered only to a caller
  allowed to make the request), claims the key or finds the stored answer, which it raises as ``Replay``;
- ``handle_exception``: answers a ``Replay`` with the stored answer, as it was, plus ``Idempotent-Replayed``;
- ``finalize_response``: stores a 2xx answer in the claimed record, still inside the request's transaction.
"""

from typing import Any, cast

from django.db import transaction
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.request import Request
from rest_framework.views import APIView

from sapien.core.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    StoredAnswer,
    checked_key,
    claim_key,
    release_key,
    request_fingerprint,
    store_answer,
)

WRITE_METHODS = frozenset({"POST", "PATCH"})
API_PREFIX = "/api/"
_META_NAME = "HTTP_" + HEADER.upper().replace("-", "_")
_CLAIM = "_sapien_idempotency_claim"  # the claimed record's id, on the view instance (one per request)


class Replay(Exception):  # not an error: the way out of DRF's initial() with an answer
    """The stored answer to this request, raised from ``initial`` to skip the handler."""

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("replayed")
        self.answer = answer


def _caller(request: Request) -> str:
    token = cast(AccessToken, request.auth)  # an organization is set by a token alone
    return f"user:{token.user_id}" if token.user_id else f"client:{token.application.client_id}"


def begin(view: APIView, request: Request) -> None:
    """Claims the request's key, or raises ``Replay``; nothing for a request the rule does not cover."""
    raw = request.META.get(_META_NAME)
    if raw is None or request.method not in WRITE_METHODS or not request.path_info.startswith(API_PREFIX):
        return
    organization = getattr(request._request, "organization", None)
    if organization is None:  # an API view without a caller's organization: none writes today
        return
    outcome = claim_key(
        organization_id=organization.pk,
        key=checked_key(raw),
        fingerprint=request_fingerprint(
            method=request.method,
            path=request.get_full_path(),
            caller=_caller(request),
            body=request._request.body,
        ),
        now=timezone.now(),
    )
    if isinstance(outcome, StoredAnswer):
        raise Replay(outcome)
    setattr(view, _CLAIM, outcome)


def finish(view: APIView, response: HttpResponseBase) -> None:
    """Stores a 2xx answer in the claimed record; frees the key of a failure that did not roll back."""
    record_id = getattr(view, _CLAIM, None)
    if record_id is None or (not transaction.get_autocommit() and transaction.get_rollback()):
        return  # a rollback takes the claim with it
    setattr(view, _CLAIM, None)
    if not 200 <= response.status_code < 300 or response.streaming:
        release_key(record_id=record_id)
        return
    render = getattr(response, "render", None)
    if callable(render):
        render()  # a DRF response renders lazily, after the transaction: its bytes are needed now
    store_answer(
        record_id=record_id,
        answer=StoredAnswer(
            status_code=response.status_code,
            content_type=response.get("Content-Type", ""),
            body=bytes(response.content),  # type: ignore[attr-defined]  # not streaming: checked above
        ),
    )


def replayed(answer: StoredAnswer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status_code, content_type=answer.content_type or None)
    response[REPLAYED_HEADER] = "true"
    return response


def install() -> None:
    """Wraps ``APIView.initial``, ``handle_exception`` and ``finalize_response`` once per process."""
    if getattr(APIView.initial, "sapien_idempotent", False):
        return
    drf_initial, drf_handle_exception, drf_finalize = (
        APIView.initial,
        APIView.handle_exception,
        APIView.finalize_response,
    )

    def initial(self: APIView, request: Request, *args: Any, **kwargs: Any) -> None:
        drf_initial(self, request, *args, **kwargs)
        begin(self, request)

    def handle_exception(self: APIView, exc: Exception) -> Any:
        if isinstance(exc, Replay):
            return replayed(exc.answer)
        return drf_handle_exception(self, exc)

    def finalize_response(self: APIView, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = drf_finalize(self, request, response, *args, **kwargs)
        finish(self, response)
        return response

    initial.sapien_idempotent = True  # type: ignore[attr-defined]
    APIView.initial = initial  # type: ignore[method-assign]
    APIView.handle_exception = handle_exception  # type: ignore[method-assign]
    APIView.finalize_response = finalize_response  # type: ignore[method-assign]
