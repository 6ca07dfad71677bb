"""HTTP transport: pure I/O returning a frozen ``DeliveryResult``; failures are outcomes.

One ``requests.Session`` per process keeps keep-alive connections pooled per
host. Redirects are never followed, proxies from the environment are ignored.
"""

import time
from dataclasses import dataclass
from datetime import datetime

import requests
from django.conf import settings
from django.utils import timezone
from requests.adapters import HTTPAdapter

from deliveries.models import RESPONSE_EXCERPT_CHARS
from deliveries.per_process import PerProcess
from deliveries.safe_http import PublicOnlyAdapter


@dataclass(frozen=True)
class DeliveryRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class DeliveryResult:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str = ""
    response_excerpt: str = ""
    retry_after: str | None = None


def _pooled_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    pool = max(settings.ESL_DELIVERY_CONCURRENCY, 10)
    adapter_class = HTTPAdapter if settings.ESL_ALLOW_PRIVATE_CALLBACKS else PublicOnlyAdapter
    adapter = adapter_class(pool_connections=64, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_session = PerProcess(_pooled_session)


def http_session() -> requests.Session:
    """The process's pooled session (re-created after a fork)."""
    return _session.get()


def post(request: DeliveryRequest) -> DeliveryResult:
    started_at = timezone.now()
    started = time.perf_counter()
    try:
        response = http_session().post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=(settings.ESL_CONNECT_TIMEOUT_SECONDS, settings.ESL_READ_TIMEOUT_SECONDS),
            allow_redirects=False,
            stream=True,
        )
        try:
            excerpt = response.raw.read(RESPONSE_EXCERPT_CHARS * 4, decode_content=True) or b""
        finally:
            response.close()
        return DeliveryResult(
            started_at=started_at,
            duration_ms=int((time.perf_counter() - started) * 1000),
            status_code=response.status_code,
            response_excerpt=excerpt.decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS],
            retry_after=response.headers.get("Retry-After"),
        )
    except requests.exceptions.Timeout as exc:
        error = f"timeout: {type(exc).__name__}"
    except requests.exceptions.ConnectionError as exc:
        error = f"connection error: {_first_line(exc)}"
    except requests.exceptions.RequestException as exc:
        error = f"request error: {_first_line(exc)}"
    return DeliveryResult(
        started_at=started_at, duration_ms=int((time.perf_counter() - started) * 1000), error=error[:500]
    )


def _first_line(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
