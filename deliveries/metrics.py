"""Prometheus metrics at ``/metrics``, read from PostgreSQL at scrape time.

PostgreSQL is the truth about what was delivered, so the figures are the same
whichever process or host is scraped, and need no shared state between web and
worker processes. Counts cover the retention window (purging lowers them).
"""

from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from sapien.core.tiers import limits_for
from sapien.events.quota import window_start
from sapien.events.selectors import outbox_state

LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]


def _rows(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class SapienCollector(Collector):
    def collect(self) -> Iterator[Any]:
        deliveries = GaugeMetricFamily(
            "sapien_deliveries", "Deliveries in the retention window, by status.", labels=["status"]
        )
        for status, count in _rows("SELECT status, count(*) FROM deliveries_delivery GROUP BY status"):
            deliveries.add_metric([status], count)
        yield deliveries

        attempts = GaugeMetricFamily(
            "sapien_delivery_attempts", "Attempts in the retention window, by outcome.", labels=["outcome"]
        )
        for succeeded, count in _rows("SELECT succeeded, count(*) FROM deliveries_deliveryattempt GROUP BY succeeded"):
            attempts.add_metric(["success" if succeeded else "failure"], count)
        yield attempts

        bucket_sql = ", ".join(f"count(*) FILTER (WHERE duration_ms <= {edge})" for edge in LATENCY_BUCKETS_MS)
        (row,) = _rows(f"SELECT {bucket_sql}, count(*), coalesce(sum(duration_ms), 0) FROM deliveries_deliveryattempt")
        *buckets, total, total_ms = row
        histogram = HistogramMetricFamily(
            "sapien_attempt_duration_seconds", "HTTP attempt durations in the retention window."
        )
        histogram.add_metric(
            [],
            [(str(edge / 1000), count) for edge, count in zip(LATENCY_BUCKETS_MS, buckets, strict=True)]
            + [("+Inf", total)],
            sum_value=total_ms / 1000,
        )
        yield histogram

        depth, lag = outbox_state()
        yield GaugeMetricFamily("sapien_outbox_depth", "Events not yet fanned out by the relay.", value=depth)
        yield GaugeMetricFamily("sapien_outbox_lag_seconds", "Age of the oldest event not yet relayed.", value=lag)

        ((due, oldest),) = _rows(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)"
            " FROM deliveries_delivery WHERE status = 'pending' AND next_attempt_at <= now()"
        )
        yield GaugeMetricFamily("sapien_deliveries_due", "Pending deliveries whose time has come.", value=due)
        yield GaugeMetricFamily(
            "sapien_deliveries_due_oldest_seconds", "How long the oldest due delivery has waited.", value=oldest
        )

        used = GaugeMetricFamily("sapien_quota_used", "Events counted this hour.", labels=["organization"])
        limit = GaugeMetricFamily("sapien_quota_limit", "Hourly event quota.", labels=["organization"])
        for organization_id, tier, events in _rows(
            "SELECT o.id, o.tier, q.events FROM events_quotausage q"
            " JOIN core_organization o ON o.id = q.organization_id WHERE q.window_start = %s",
            [window_start(timezone.now())],
        ):
            used.add_metric([str(organization_id)], events)
            limit.add_metric([str(organization_id)], limits_for(tier).events_per_hour)
        yield used
        yield limit


def metrics_view(request: HttpRequest) -> HttpResponse:
    registry = CollectorRegistry()
    registry.register(SapienCollector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")
