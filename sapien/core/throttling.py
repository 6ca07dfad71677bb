from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class ClientRateThrottle(SimpleRateThrottle):
    """Requests per OAuth client (``API_THROTTLE_RATE``); past it, 429 with ``Retry-After``."""

    scope = "client"

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
