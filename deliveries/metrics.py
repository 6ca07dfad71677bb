"""Prometheus metrics at ``/metrics``: counters summed from the rollup tables, gauges from bounded index scans.

A scrape never reads the history (events, deliveries, attempts): it costs the same at a thousand deliveries
as at a billion, and its figures are the same whichever process or host answers it. The counters are
``deliveries/counters.py``'s, counted as outcomes are recorded; the gauges read the outbox's and the due
deliveries' partial indexes, with counts capped at ``COUNT_CAP``. docs/operations.md lists every metric.

Who may scrape: with ``ESL_METRICS_TOKEN`` set, whoever sends ``Authorization: Bearer <token>``; without it,
only a client on this host (loopback) that no proxy forwarded, which is what ``make run`` needs.
"""

import hmac
import ipaddress
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from deliveries.counters import DURATION_BUCKETS_MS, STATUS_CLASSES, counter_totals
from deliveries.models import DeliveryStatus, OutcomeCounter, RelayCounter
from sapien.core.errors import error_body
from sapien.core.tiers import limits_for
from sapien.events.quota import window_start
from sapien.events.selectors import outbox_state

# The most a count gauge reads: past it, the gauge says COUNT_CAP (a backlog that large is an alert anyway).
COUNT_CAP = 10_000

DUE_SQL = f"""
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM deliveries_delivery
            WHERE status = '{DeliveryStatus.PENDING}' AND next_attempt_at <= now()
            LIMIT %(cap)s
        ) AS due),
       coalesce((SELECT extract(epoch FROM now() - next_attempt_at) FROM deliveries_delivery
                 WHERE status = '{DeliveryStatus.PENDING}' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT 1), 0)
"""  # both on delivery_due_idx (pending rows only), from its oldest entry up to now: never the history

QUOTA_SQL = """
SELECT q.organization_id, o.tier, q.events FROM events_quotausage q
JOIN core_organization o ON o.id = q.organization_id
WHERE q.window_start = %s
"""  # one row per organization with events this hour: only with ESL_METRICS_PER_ORGANIZATION

# Request headers a proxy adds: a loopback client that carries one may be anyone the proxy serves.
FORWARDING_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")


def due_state(*, cap: int) -> tuple[int, float]:
    """Due deliveries (in flight ones included), counted up to ``cap``, and how long the oldest has waited."""
    with connection.cursor() as cursor:
        cursor.execute(DUE_SQL, {"cap": cap})
        due, oldest = cursor.fetchone() or (0, 0)
    return int(due), float(oldest)


class SapienCollector(Collector):
    def __init__(self, *, per_organization: bool) -> None:
        self.per_organization = per_organization
        self.labels = ["organization"] if per_organization else []

    def _of(self, organization: str | None) -> list[str]:
        return [organization] if organization is not None else []

    def collect(self) -> Iterator[Any]:
        yield from self.outcome_counters()
        yield from self.relay_counters()
        yield from self.gauges()
        if self.per_organization:
            yield from self.quota_gauges()

    def outcome_counters(self) -> Iterator[Any]:
        attempts = CounterMetricFamily(
            "sapien_delivery_attempts", "HTTP attempts recorded, by outcome and class of answer ('error': none).",
            labels=[*self.labels, "outcome", "status_class"],
        )  # fmt: skip
        finished = CounterMetricFamily(
            "sapien_deliveries_finished", "Deliveries that reached a final status.", labels=[*self.labels, "status"]
        )
        durations = HistogramMetricFamily(
            "sapien_delivery_attempt_duration_seconds", "Durations of the HTTP attempts recorded.", labels=self.labels
        )
        for organization, total in counter_totals(OutcomeCounter, per_organization=self.per_organization).items():
            labels = self._of(organization)
            for status_class in STATUS_CLASSES:
                outcome = "success" if status_class == "2xx" else "failure"
                attempts.add_metric([*labels, outcome, status_class], total[f"attempts_{status_class}"])
            for status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
                finished.add_metric([*labels, str(status)], total[f"deliveries_{status}"])
            count = sum(total[f"attempts_{status_class}"] for status_class in STATUS_CLASSES)
            buckets = [(str(edge / 1000), total[f"duration_le_{edge}ms"]) for edge in DURATION_BUCKETS_MS]
            durations.add_metric(labels, [*buckets, ("+Inf", count)], sum_value=total["duration_ms_sum"] / 1000)
        yield attempts
        yield finished
        yield durations

    def relay_counters(self) -> Iterator[Any]:
        relayed = CounterMetricFamily("sapien_events_relayed", "Events fanned out by the relay.", labels=self.labels)
        over_quota = CounterMetricFamily(
            "sapien_events_over_quota",
            "Events past their organization's hourly quota, whose deliveries waited for the next window.",
            labels=self.labels,
        )
        created = CounterMetricFamily(
            "sapien_deliveries_created", "Deliveries created by the relay's fan-out.", labels=self.labels
        )
        for organization, total in counter_totals(RelayCounter, per_organization=self.per_organization).items():
            labels = self._of(organization)
            relayed.add_metric(labels, total["events_relayed"])
            over_quota.add_metric(labels, total["events_over_quota"])
            created.add_metric(labels, total["deliveries_created"])
        yield relayed
        yield over_quota
        yield created

    def gauges(self) -> Iterator[Any]:
        depth, lag = outbox_state(cap=COUNT_CAP)
        yield GaugeMetricFamily(
            "sapien_outbox_depth", f"Events not yet fanned out by the relay (counted up to {COUNT_CAP}).", value=depth
        )
        yield GaugeMetricFamily("sapien_outbox_lag_seconds", "Age of the oldest event not yet relayed.", value=lag)
        due, oldest = due_state(cap=COUNT_CAP)
        yield GaugeMetricFamily(
            "sapien_deliveries_due", f"Pending deliveries whose time has come (counted up to {COUNT_CAP}).", value=due
        )
        yield GaugeMetricFamily(
            "sapien_deliveries_due_oldest_seconds", "How long the oldest due delivery has waited.", value=oldest
        )

    def quota_gauges(self) -> Iterator[Any]:
        used = GaugeMetricFamily("sapien_quota_used", "Events counted this hour.", labels=["organization"])
        limit = GaugeMetricFamily("sapien_quota_limit", "Hourly event quota.", labels=["organization"])
        with connection.cursor() as cursor:
            cursor.execute(QUOTA_SQL, [window_start(timezone.now())])
            rows = cursor.fetchall()
        for organization_id, tier, events in rows:
            used.add_metric([str(organization_id)], events)
            limit.add_metric([str(organization_id)], limits_for(tier).events_per_hour)
        yield used
        yield limit


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """Why ``request`` may not scrape, as the response to send; ``None`` when it may.

    With ``ESL_METRICS_TOKEN``, the bearer token must match (compared in constant time; it is never logged).
    Without it, the client must be on loopback, with no proxy's forwarding header."""
    token = settings.ESL_METRICS_TOKEN
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return unauthorized("not_authenticated", "/metrics needs an Authorization: Bearer token.")
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return unauthorized("authentication_failed", "The metrics token is not valid.")
        return None
    if is_loopback(request.META.get("REMOTE_ADDR", "")) and not any(h in request.META for h in FORWARDING_HEADERS):
        return None
    return JsonResponse(
        error_body("permission_denied", "/metrics answers only this host until ESL_METRICS_TOKEN is set."), status=403
    )


def unauthorized(code: str, message: str) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=401)
    response["WWW-Authenticate"] = 'Bearer realm="sapien"'
    return response


@transaction.non_atomic_requests  # reads only: no BEGIN and COMMIT around it
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    registry = CollectorRegistry()
    registry.register(SapienCollector(per_organization=settings.ESL_METRICS_PER_ORGANIZATION))
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")
