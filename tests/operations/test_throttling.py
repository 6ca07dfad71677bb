"""API request throttling per client: 429 with Retry-After."""

import pytest
from django.core.cache import cache


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
