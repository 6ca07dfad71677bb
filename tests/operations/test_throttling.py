"""API request throttling per client: 429 with Retry-After."""

from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import cache

from sapien.core.throttling import ClientRateThrottle


@pytest.mark.django_db
def test_past_the_rate_a_client_gets_429_with_retry_after(make_organization, make_api, settings) -> None:
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"client": "3/min"}}
    organization = make_organization()
    first, second = make_api(organization), make_api(organization)

    answers = [first.get("/api/persons").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    throttled = first.get("/api/persons")
    assert throttled.json()["error"]["code"] == "throttled"
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert second.get("/api/persons").status_code == 200  # another client has its own budget
    cache.clear()


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _request_of(client_id: str) -> Any:
    return SimpleNamespace(auth=SimpleNamespace(application=SimpleNamespace(client_id=client_id)))


def _throttle(clock: _Clock) -> ClientRateThrottle:
    throttle = ClientRateThrottle()
    throttle.timer = clock
    return throttle


def test_the_whole_budget_can_be_spent_at_once_then_comes_back_one_interval_at_a_time(settings) -> None:
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"client": "3/min"}}
    clock, request = _Clock(), _request_of("gcra-client")

    assert [_throttle(clock).allow_request(request, None) for _ in range(3)] == [True, True, True]
    refused = _throttle(clock)
    assert refused.allow_request(request, None) is False
    assert refused.wait() == pytest.approx(20.0, abs=1e-6)  # one interval: a minute / 3

    clock.now += 19.0
    assert _throttle(clock).allow_request(request, None) is False
    clock.now += 1.0
    assert _throttle(clock).allow_request(request, None) is True  # one request back, not the whole budget
    assert _throttle(clock).allow_request(request, None) is False

    clock.now += 60.0
    assert [_throttle(clock).allow_request(request, None) for _ in range(4)] == [True, True, True, False]
    cache.clear()


def test_a_refused_request_does_not_use_the_budget(settings) -> None:
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"client": "2/min"}}
    clock, request = _Clock(), _request_of("gcra-refused")
    for _ in range(2):
        _throttle(clock).allow_request(request, None)
    for _ in range(50):  # a client hammering past its rate
        assert _throttle(clock).allow_request(request, None) is False

    clock.now += 30.0
    assert _throttle(clock).allow_request(request, None) is True
    cache.clear()


def test_a_client_costs_one_number_in_the_cache_however_many_requests_it_made(settings) -> None:
    """DRF's throttle kept every request's time of the last period, read and written whole at each request."""
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"client": "6000/min"}}
    clock, request = _Clock(), _request_of("gcra-busy")
    throttle, first_request_at = _throttle(clock), clock.now + 0.001
    for _ in range(1000):
        clock.now += 0.001
        assert _throttle(clock).allow_request(request, None) is True
    throttle.allow_request(request, None)

    kept = cache.get(throttle.key)
    assert isinstance(kept, float)
    assert kept == pytest.approx(first_request_at + 1001 * 0.01, abs=1e-6)  # an interval (10 ms) per request
    cache.clear()
