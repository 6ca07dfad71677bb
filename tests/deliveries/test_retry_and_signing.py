"""Pure parts of delivery: the retry policy and the two signatures."""

import base64
import hashlib
import hmac
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from deliveries import retry
from deliveries.claims import ClaimedEvent, ClaimedSubscription
from deliveries.outbound import build_request
from deliveries.signing import sapien_signature, standard_webhooks_signature
from sapien.core.tiers import limits_for
from tests.support.claimed import claimed_delivery


@pytest.fixture(autouse=True)
def _retry_settings(settings):
    settings.ESL_RETRY_DELAY_MS = 1000
    settings.ESL_RETRY_MAX_DELAY_MS = 3_600_000
    settings.ESL_RETRY_ATTEMPTS = 5


@pytest.mark.parametrize(("attempt", "base"), [(1, 1), (2, 2), (3, 4), (6, 32), (10, 512)])
def test_backoff_doubles_from_the_base_delay_with_twenty_percent_jitter(attempt: int, base: float) -> None:
    delays = [retry.backoff_seconds(attempt, rng=random.Random(seed)) for seed in range(200)]

    assert min(delays) >= base * 0.8
    assert max(delays) <= base * 1.2
    assert max(delays) - min(delays) > base * 0.2  # it really jitters


def test_backoff_is_capped(settings) -> None:
    settings.ESL_RETRY_MAX_DELAY_MS = 5000

    assert retry.backoff_seconds(20) == 5.0


def test_retry_after_is_honoured_within_the_cap(settings) -> None:
    assert retry.backoff_seconds(1, retry_after=120) == 120
    settings.ESL_RETRY_MAX_DELAY_MS = 60_000
    assert retry.backoff_seconds(1, retry_after=120) == 60


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert retry.parse_retry_after("30", now=now) == 30
    assert retry.parse_retry_after("Thu, 01 Jan 2026 12:01:00 GMT", now=now) == 60
    assert retry.parse_retry_after("soon", now=now) is None
    assert retry.parse_retry_after(None, now=now) is None


@given(attempt=st.integers(min_value=1, max_value=40), retry_after=st.none() | st.floats(0, 10**7))
def test_every_delay_is_positive_and_within_the_cap(attempt: int, retry_after: float | None) -> None:
    delay = retry.backoff_seconds(attempt, retry_after=retry_after)

    assert 0 < delay <= 3600


def test_next_attempt_time_is_now_plus_the_delay() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    assert now + timedelta(seconds=0.8) <= retry.next_attempt_time(1, now=now) <= now + timedelta(seconds=1.2)


@pytest.mark.parametrize(("tier", "budget"), [("free", 3), ("standard", 5), ("enterprise", 10)])
def test_retry_budgets_by_tier(tier: str, budget: int) -> None:
    assert limits_for(tier).retry_budget == budget


def test_the_standard_budget_follows_esl_retry_attempts(settings) -> None:
    settings.ESL_RETRY_ATTEMPTS = 7

    assert limits_for("standard").retry_budget == 7


@pytest.mark.parametrize(
    ("code", "success"), [(200, True), (204, True), (299, True), (301, False), (500, False), (None, False)]
)
def test_only_2xx_is_success(code: int | None, success: bool) -> None:
    assert retry.is_success(code) is success


@given(secret=st.text(min_size=1, max_size=64), body=st.binary(max_size=2048), timestamp=st.integers(0, 2**33))
def test_signatures_verify_as_receivers_check_them(secret: str, body: bytes, timestamp: int) -> None:
    expected_hex = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert sapien_signature(secret=secret, body=body) == expected_hex

    header = standard_webhooks_signature(secrets=[secret], message_id="msg_1", timestamp=timestamp, body=body)
    digest = hmac.new(secret.encode(), f"msg_1.{timestamp}.".encode() + body, hashlib.sha256).digest()
    assert header == "v1," + base64.b64encode(digest).decode()


def test_the_standardwebhooks_library_verifies_our_signature() -> None:
    body = b'{"id":"evt","type":"system.ping"}'
    timestamp = int(datetime.now(tz=UTC).timestamp())
    headers = {
        "webhook-id": "evt",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_signature(
            secrets=["old-secret", "new-secret"], message_id="evt", timestamp=timestamp, body=body
        ),
    }

    assert Webhook(b"new-secret").verify(body, headers)["id"] == "evt"
    assert Webhook(b"old-secret").verify(body, headers)["id"] == "evt"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(b"another-secret").verify(body, headers)


def test_the_signature_algorithm_is_configurable() -> None:
    assert (
        sapien_signature(secret="s", body=b"x", algorithm="sha512") == hmac.new(b"s", b"x", hashlib.sha512).hexdigest()
    )


def test_a_request_is_timestamped_and_signed_at_the_time_its_batch_gives() -> None:
    """A batch is signed with one ``now``: the timestamp header is that time's, and the signature covers it."""
    event = ClaimedEvent(id=uuid.uuid4(), type="system.ping", body="{}", organization_id=uuid.uuid4(),
                         created_at=datetime.now(tz=UTC))  # fmt: skip
    subscription = ClaimedSubscription(
        id=uuid.uuid4(), callback_url="https://example.com/h", secret="s" * 20, active=True
    )
    at = datetime(2026, 1, 15, 14, 32, 7, 250000, tzinfo=UTC)

    request = build_request(claimed_delivery(event, subscription), b"{}", now=at)

    assert request.headers["webhook-timestamp"] == "1768487527"
    assert request.headers["webhook-signature"] == standard_webhooks_signature(
        secrets=["s" * 20], message_id=str(event.id), timestamp=1768487527, body=b"{}"
    )
