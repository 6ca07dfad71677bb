"""/metrics: counters counted as outcomes are recorded, that only go up (through purges too); bounded gauges;
who may scrape; no organization id unless asked for; what a scrape and a record cost."""

import logging
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries import counters, metrics
from deliveries.claims import ClaimedDelivery, claim_due, record_outcomes
from deliveries.counters import OUTCOME_COUNTS, RELAY_COUNTS
from deliveries.models import Delivery, DeliveryStatus, OutcomeCounter, RelayCounter
from deliveries.relay import relay_batch, relay_pending
from deliveries.retention import purge_expired
from deliveries.retry import decide
from deliveries.transport import DeliveryResult
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.events import events_backdate

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def scrape(client: Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def counter_samples(samples: Samples) -> Samples:
    return {key: v for key, v in samples.items() if key[0].endswith(COUNTER_SUFFIXES)}


def assert_never_went_down(before: Samples, after: Samples) -> None:
    for key, earlier in counter_samples(before).items():
        assert after[key] >= earlier, key


@pytest.fixture
def subscription(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 20
    )


def events(organization, count: int) -> None:
    with transaction.atomic():
        for _ in range(count):
            record_event(organization_id=organization.id, event_type="person.created", data={})


def answered(delivery: ClaimedDelivery, status_code: int | None, duration_ms: int):
    result = DeliveryResult(
        started_at=timezone.now(), duration_ms=duration_ms, status_code=status_code,
        error="" if status_code else "timeout",
    )  # fmt: skip
    return decide(delivery, result, now=timezone.now())


def claim_and_record(answers: list[tuple[int | None, int]]) -> None:
    """Claims as many due deliveries as there are answers and records one answer (code, ms) for each."""
    token = uuid.uuid4()
    batch = claim_due(batch_size=len(answers), token=token)
    assert len(batch) == len(answers)
    record_outcomes([answered(d, code, ms) for d, (code, ms) in zip(batch, answers, strict=True)], token=token)


def test_counters_go_up_as_outcomes_are_recorded(client: Client, organization, subscription) -> None:
    events(organization, 3)
    relay_pending(batch_size=10)
    before = scrape(client)

    claim_and_record([(200, 40), (410, 3000), (None, 12000)])  # succeeded, failed for good, retried later

    after = scrape(client)
    assert value(before, "sapien_events_relayed_total") == value(after, "sapien_events_relayed_total") == 3
    assert value(after, "sapien_deliveries_created_total") == 3
    assert value(before, "sapien_delivery_attempts_total", outcome="success", status_class="2xx") == 0
    assert value(after, "sapien_delivery_attempts_total", outcome="success", status_class="2xx") == 1
    assert value(after, "sapien_delivery_attempts_total", outcome="failure", status_class="4xx") == 1
    assert value(after, "sapien_delivery_attempts_total", outcome="failure", status_class="error") == 1
    assert value(after, "sapien_delivery_attempts_total", outcome="failure", status_class="5xx") == 0
    assert value(after, "sapien_deliveries_finished_total", status="succeeded") == 1
    assert value(after, "sapien_deliveries_finished_total", status="failed") == 1
    assert value(after, "sapien_delivery_attempt_duration_seconds_bucket", le="0.05") == 1
    assert value(after, "sapien_delivery_attempt_duration_seconds_bucket", le="5.0") == 2
    assert value(after, "sapien_delivery_attempt_duration_seconds_bucket", le="10.0") == 2
    assert value(after, "sapien_delivery_attempt_duration_seconds_bucket", le="+Inf") == 3
    assert value(after, "sapien_delivery_attempt_duration_seconds_count") == 3
    assert value(after, "sapien_delivery_attempt_duration_seconds_sum") == pytest.approx(15.04)
    assert_never_went_down(before, after)


def test_the_histogram_is_cumulative_and_counts_every_attempt(client: Client, organization, subscription) -> None:
    durations = [1, 7, 30, 99, 100, 101, 2500, 9999, 10001, 60000]
    events(organization, len(durations))
    relay_pending(batch_size=20)

    claim_and_record([(200 if n % 2 else 503, ms) for n, ms in enumerate(durations)])

    samples = scrape(client)
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in samples.items()
        if name == "sapien_delivery_attempt_duration_seconds_bucket"
    )
    assert [count for _, count in buckets] == [1, 2, 2, 3, 5, 6, 6, 6, 7, 7, 8, 10]
    assert [edge for edge, _ in buckets][-1] == float("inf")
    attempts = sum(count for (name, _), count in samples.items() if name == "sapien_delivery_attempts_total")
    assert value(samples, "sapien_delivery_attempt_duration_seconds_count") == attempts == len(durations)
    assert value(samples, "sapien_delivery_attempt_duration_seconds_sum") == pytest.approx(sum(durations) / 1000)


def test_a_stale_claim_counts_its_attempt_but_not_an_outcome_it_could_not_record(
    client: Client, organization, subscription
) -> None:
    events(organization, 1)
    relay_pending(batch_size=10)
    old_token = uuid.uuid4()
    (claimed,) = claim_due(batch_size=10, token=old_token)
    Delivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))  # the lease lapsed
    assert claim_due(batch_size=10, token=uuid.uuid4())  # another worker took it over

    record_outcomes([answered(claimed, 200, 5)], token=old_token)

    samples = scrape(client)
    assert value(samples, "sapien_delivery_attempts_total", outcome="success", status_class="2xx") == 1
    assert value(samples, "sapien_deliveries_finished_total", status="succeeded") == 0


def test_a_relay_batch_counts_events_deliveries_and_events_past_the_quota(
    client: Client, organization, subscription, settings
) -> None:
    settings.RATE_LIMIT_EVENTS_HOUR = 2  # the standard tier's quota
    Subscription.objects.create(
        organization=organization, callback_url="https://other.example.com/", events=["person.*"], secret="s" * 20
    )
    events(organization, 3)

    batch = relay_batch(batch_size=10)

    samples = scrape(client)
    assert (batch.events, batch.deliveries) == (3, 6)
    assert value(samples, "sapien_events_relayed_total") == 3
    assert value(samples, "sapien_deliveries_created_total") == 6
    assert value(samples, "sapien_events_over_quota_total") == 1


def test_counters_keep_their_totals_when_the_history_is_purged(
    client: Client, organization, subscription, settings
) -> None:
    events(organization, 4)
    relay_pending(batch_size=10)
    claim_and_record([(200, 20), (200, 30), (500, 40), (404, 50)])
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(status=DeliveryStatus.FAILED)  # nothing left due
    before = scrape(client)

    purge_expired(now=timezone.now() + timedelta(hours=settings.ESL_RETENTION_HOURS, days=2))  # past a whole day

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    after = scrape(client)
    assert counter_samples(after) == counter_samples(before)
    assert value(after, "sapien_delivery_attempt_duration_seconds_count") == 4
    assert value(after, "sapien_deliveries_created_total") == 4

    events(organization, 1)  # and they go on from there, never from zero
    relay_pending(batch_size=10)
    claim_and_record([(200, 10)])
    again = scrape(client)
    assert value(again, "sapien_delivery_attempt_duration_seconds_count") == 5
    assert value(again, "sapien_deliveries_finished_total", status="succeeded") == 3
    assert value(again, "sapien_deliveries_created_total") == 5
    assert_never_went_down(after, again)


@pytest.mark.django_db(transaction=True)
def test_two_workers_recording_at_once_on_the_same_row_lose_no_count(
    client: Client, organization, subscription, monkeypatch
) -> None:
    monkeypatch.setattr(counters, "COUNTER_SHARDS", 1)  # one row: the second must wait for the first's commit
    events(organization, 40)
    relay_pending(batch_size=100)
    claims = [(token, claim_due(batch_size=20, token=token)) for token in (uuid.uuid4(), uuid.uuid4())]
    barrier = threading.Barrier(2)

    def record(token: uuid.UUID, batch: list[ClaimedDelivery]) -> None:
        try:
            outcomes = [answered(d, 200, 15) for d in batch]
            barrier.wait()
            record_outcomes(outcomes, token=token)
        finally:
            connection.close()

    threads = [threading.Thread(target=record, args=claim) for claim in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    samples = scrape(client)
    assert value(samples, "sapien_delivery_attempts_total", outcome="success", status_class="2xx") == 40
    assert value(samples, "sapien_deliveries_finished_total", status="succeeded") == 40
    assert OutcomeCounter.objects.count() == 1


def test_counting_adds_no_statement_to_recording_or_relaying(
    client: Client, organization, subscription, django_assert_num_queries
) -> None:
    """The counts are CTEs of the statements that record and fan out (tests/deliveries/test_relay_and_claims.py
    pins those counts too): the relay batch is one statement plus the test transaction's SAVEPOINT and RELEASE,
    recording successes one autocommitted statement."""
    events(organization, 5)
    with django_assert_num_queries(1 + 2):
        relay_batch(batch_size=10)
    token = uuid.uuid4()
    batch = claim_due(batch_size=10, token=token)
    outcomes = [answered(d, 200, 5) for d in batch]

    with django_assert_num_queries(1):
        record_outcomes(outcomes, token=token)

    samples = scrape(client)
    assert value(samples, "sapien_events_relayed_total") == 5
    assert value(samples, "sapien_delivery_attempts_total", outcome="success", status_class="2xx") == 5


def test_a_scrape_is_four_queries_however_long_the_history(
    client: Client, organization, subscription, settings, django_assert_num_queries
) -> None:
    """Counters (outcomes, relay), the outbox's depth and lag, the due deliveries' count and oldest; and this
    hour's quotas when counted per organization. No transaction around them: a scrape only reads."""
    events(organization, 5)
    relay_pending(batch_size=10)
    claim_and_record([(200, 5)] * 5)

    with django_assert_num_queries(4):
        response = client.get("/metrics")
    settings.ESL_METRICS_PER_ORGANIZATION = True
    with django_assert_num_queries(5):
        per_organization = client.get("/metrics")

    assert response.status_code == per_organization.status_code == 200


def test_count_gauges_stop_at_their_cap_and_ages_are_of_the_oldest(
    client: Client, organization, subscription, monkeypatch
) -> None:
    monkeypatch.setattr(metrics, "COUNT_CAP", 2)
    events(organization, 3)
    events_backdate(timezone.now() - timedelta(seconds=120))

    waiting = scrape(client)
    relay_pending(batch_size=10)
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=120))
    due = scrape(client)

    assert value(waiting, "sapien_outbox_depth") == 2
    assert value(waiting, "sapien_outbox_lag_seconds") > 100  # now() is the test transaction's start
    assert value(due, "sapien_outbox_depth") == 0
    assert value(due, "sapien_outbox_lag_seconds") == 0
    assert value(due, "sapien_deliveries_due") == 2
    assert value(due, "sapien_deliveries_due_oldest_seconds") > 100


def test_no_organization_id_appears_by_default(client: Client, organization, subscription) -> None:
    events(organization, 2)
    relay_pending(batch_size=10)
    claim_and_record([(200, 5), (500, 5)])

    body = client.get("/metrics").content.decode()

    assert str(organization.id) not in body
    assert "organization=" not in body
    assert "sapien_quota" not in body


def test_counting_per_organization_is_opt_in(client: Client, organization, subscription, settings) -> None:
    events(organization, 1)
    relay_pending(batch_size=10)
    claim_and_record([(200, 5)])  # counted while the opt-in is off
    settings.ESL_METRICS_PER_ORGANIZATION = True

    events(organization, 2)
    relay_pending(batch_size=10)
    claim_and_record([(200, 5), (200, 5)])

    samples = scrape(client)
    org = str(organization.id)
    assert (
        value(samples, "sapien_delivery_attempts_total", organization=org, outcome="success", status_class="2xx") == 2
    )
    assert value(samples, "sapien_delivery_attempts_total", organization="", outcome="success", status_class="2xx") == 1
    assert value(samples, "sapien_events_relayed_total", organization=org) == 2
    assert value(samples, "sapien_quota_used", organization=org) == 3
    assert value(samples, "sapien_quota_limit", organization=org) == 10000
    settings.ESL_METRICS_PER_ORGANIZATION = False
    totals = scrape(client)
    assert value(totals, "sapien_delivery_attempts_total", outcome="success", status_class="2xx") == 3


def test_without_a_token_only_this_host_may_scrape(client: Client, settings) -> None:
    settings.ESL_METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    remote = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")

    for refused in (remote, proxied):
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "permission_denied"
        assert "sapien_" not in refused.content.decode()


def test_with_a_token_only_its_bearer_may_scrape(client: Client, settings, caplog) -> None:
    token = "metrics-token-" + "x" * 24
    settings.ESL_METRICS_TOKEN = token

    with caplog.at_level(logging.DEBUG):
        missing = client.get("/metrics")
        wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
        basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}")
        right = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "not_authenticated")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "authentication_failed")
    assert (basic.status_code, basic.json()["error"]["code"]) == (401, "not_authenticated")
    assert missing["WWW-Authenticate"] == 'Bearer realm="sapien"'
    assert right.status_code == 200
    assert "sapien_delivery_attempts_total" in right.content.decode()
    assert all(token not in record.getMessage() and token not in str(vars(record)) for record in caplog.records)


def test_the_counter_tables_have_a_column_for_every_count() -> None:
    for model, counts in ((OutcomeCounter, OUTCOME_COUNTS), (RelayCounter, RELAY_COUNTS)):
        columns = [field.column for field in model._meta.concrete_fields]
        assert columns == ["organization_id", "shard", *counts]
