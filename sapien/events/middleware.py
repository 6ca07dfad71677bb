"""The hourly event quota (``sapien.events.quota``) told to API callers in response headers."""

import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from sapien.events.quota import QuotaStatus, quota_status


class RateLimitHeadersMiddleware:
    """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (the hourly event quota) on every API response.

    The count is read at most once a second per organization and process: the relay counts in
    batches anyway, so the headers are as fresh as the count itself, for one query less per request.
    """

    FRESH_FOR = 1.0

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._recent: dict[Any, tuple[float, QuotaStatus]] = {}

    def quota_of(self, organization: Any) -> QuotaStatus:
        now = time.monotonic()
        cached = self._recent.get((organization.pk, organization.tier))
        if cached is None or now - cached[0] > self.FRESH_FOR:
            if len(self._recent) > 10_000:
                self._recent.clear()
            cached = (now, quota_status(organization))
            self._recent[(organization.pk, organization.tier)] = cached
        return cached[1]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        organization = getattr(request, "organization", None)
        if organization is not None:
            quota = self.quota_of(organization)
            response["X-RateLimit-Limit"] = str(quota.limit)
            response["X-RateLimit-Remaining"] = str(quota.remaining)
            response["X-RateLimit-Reset"] = str(int(quota.resets_at.timestamp()))
        return response
