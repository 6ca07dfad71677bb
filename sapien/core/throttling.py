"""API request throttling per OAuth client, at a constant cost per request.

DRF's ``SimpleRateThrottle`` keeps every request's time of the last period in the cache and reads and writes the
whole list on each request: at the default 6,000 a minute, a busy client's request carried 6,000 floats in and out
of the cache (pickled, in the process's own memory or in Redis). Here each client has one number instead, the
generic cell rate algorithm's (GCRA) "theoretical arrival time": when the client's budget will be whole again.
Each request moves it one interval (period / rate) later; a request that would move it more than a whole period
ahead is refused, for as long as it takes to come back within it. A client may use its whole budget at once, and
gets one request back every interval, as a token bucket of the rate's size would allow.
"""

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class ClientRateThrottle(SimpleRateThrottle):
    """Requests per OAuth client (``API_THROTTLE_RATE``); past it, 429 with ``Retry-After``."""

    scope = "client"
    # Not DRF's key: its value there was the list of request times, here it is one number.
    cache_format = "throttle-gcra_%(scope)s_%(ident)s"
    num_requests: int | None  # the rate, as DRF's __init__ parsed it (absent from its type stubs)
    duration: int | None
    wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        # Read at each request (not at import), so that the setting can change under test.
        rate: str | None = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # type: ignore[assignment]
        return rate

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request.auth
        application = getattr(token, "application", None)
        if application is None:
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": application.client_id}

    def allow_request(self, request: Request, view: Any) -> bool:
        if not self.num_requests or not self.duration:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        period = float(self.duration)
        now = self.timer()
        whole_at = max(float(self.cache.get(self.key, now)), now)
        moved = whole_at + period / self.num_requests
        if moved - now > period:
            self.wait_seconds = moved - now - period
            return False
        self.cache.set(self.key, moved, int(moved - now) + 1)
        return True

    def wait(self) -> float | None:
        return self.wait_seconds
