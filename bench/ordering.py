"""The relay and the claim with and without ordered subscriptions, in one process: ``python -m bench.ordering``.

    DATABASE_URL=postgresql://… .venv/bin/python -m bench.ordering [--events 2000] [--users 200] [--subs 10]

Django runs in this process against the (migrated) database ``DATABASE_URL`` names; it gets an organization of
its own, deleted at the end. Each round, for each variant, ``--subs`` subscriptions to ``availability.changed``
(all ordered, or none) and ``--events`` events of that type spread over ``--users`` users (so per user, and key,
``events / users`` of them) are inserted into the log and the outbox with SQL; then it times:

    relay        ``relay_pending()`` until the outbox is empty (deliveries born pending, as in ``(c)`` of the bench)
    claim        ``claim_due(batch_size=200)`` until nothing is due, each batch recorded succeeded before the next
                 claim, through ``record_outcomes`` (as a receiver answering at once): per claimed delivery
    blocked      with every key's first delivery waiting for a retry (an ordered subscription whose receiver is
                 down) one more subscription, unordered, gets ``--users`` deliveries: the claim that takes them,
                 behind every held one (for the unordered variant, nothing is held: the baseline); and the
                 claim's due scan alone (its ``SELECT … ORDER BY next_attempt_at LIMIT``), with and without the
                 ordering predicate, to tell it apart from the rest of the claim

Three variants, rotated each round: ``before`` (unordered subscriptions, and the claim statement without the
ordering predicate, as it was before ordered delivery), ``unordered`` (the claim as it is) and ``ordered``. Figures
are medians over rounds; ``u÷b`` is what the predicate costs everyone, ``o÷u`` what ordering costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

ROUNDS_DEFAULT = 3
# before: unordered subscriptions, the claim without the ordering predicate; unordered: the claim as it is; ordered.
VARIANTS = ("before", "unordered", "ordered")
NEVER, LONG_AGO = datetime(2100, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC)

FRESH_EVENTS_SQL = """
WITH fresh AS (
    SELECT gen_random_uuid() AS id, %(users)s::uuid[] AS users, n FROM generate_series(1, %(events)s) AS n
), events AS (
    INSERT INTO events_event (id, organization_id, type, body, created_at, recipient_id)
    SELECT id, %(organization)s, 'availability.changed',
           json_build_object('id', id, 'type', 'availability.changed',
                             'data', json_build_object('user_id', users[1 + n %% array_length(users, 1)],
                                                       'current_status', 'busy'))::text,
           clock_timestamp(), NULL
    FROM fresh
    RETURNING id, created_at, body
)
INSERT INTO events_outbox (created_at, event_id, organization_id, type, recipient_id, ordering_key)
SELECT created_at, id, %(organization)s, 'availability.changed', NULL, 'user:' || (body::jsonb -> 'data' ->> 'user_id')
FROM events
"""


def setup_django() -> None:
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
    import django

    django.setup()


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def one_round(*, ordered: bool, events: int, users: int, subs: int, explain: bool = False) -> dict[str, float]:
    from django.db import connection
    from django.db.models import Min
    from django.utils import timezone

    from deliveries.claims import CLAIMABLE, claim_due, record_outcomes
    from deliveries.models import Delivery, DeliveryStatus
    from deliveries.ordering import IN_TURN
    from deliveries.relay import relay_pending
    from deliveries.retry import decide
    from deliveries.transport import DeliveryResult
    from sapien.core.models import Organization
    from subscriptions.models import Subscription

    without_turns = CLAIMABLE.replace(f" AND {IN_TURN}", "")  # the claimable predicate before ordering
    organization = Organization.objects.create(name=f"bench-ordering-{uuid.uuid4().hex[:8]}", tier="enterprise")
    try:
        for _ in range(subs):
            Subscription.objects.create(
                organization=organization, callback_url="https://93.184.215.14/bench", events=["availability.changed"],
                secret="s" * 24, ordered=ordered,
            )  # fmt: skip
        people = [str(uuid.uuid4()) for _ in range(users)]
        with connection.cursor() as cursor:
            cursor.execute(FRESH_EVENTS_SQL, {"organization": organization.id, "events": events, "users": people})
        relay_seconds, relayed = timed(lambda: relay_pending(batch_size=500))
        assert relayed.deliveries == events * subs, relayed

        claimed = 0
        claim_seconds = 0.0
        while True:
            batch_token = uuid.uuid4()
            seconds, batch = timed(lambda token=batch_token: claim_due(batch_size=200, token=token))
            if not batch:
                break
            claim_seconds += seconds
            claimed += len(batch)
            now = timezone.now()
            answered = DeliveryResult(started_at=now, duration_ms=1, status_code=200)
            record_outcomes([decide(d, answered, now=now) for d in batch], token=batch_token)
        assert claimed == events * subs, claimed

        # Every key's first delivery waits for a retry; the rest of each key is held behind it (when ordered).
        Delivery.objects.filter(organization=organization).update(status=DeliveryStatus.PENDING)
        firsts = (
            Delivery.objects.filter(organization=organization)
            .values("subscription_id", "ordering_key")
            .annotate(first=Min("event_created_at"))
        )
        held = 0
        for row in firsts if ordered else []:
            held += Delivery.objects.filter(
                subscription_id=row["subscription_id"], ordering_key=row["ordering_key"], event_created_at=row["first"]
            ).update(next_attempt_at=NEVER)
        Delivery.objects.filter(organization=organization).exclude(next_attempt_at=NEVER).update(
            next_attempt_at=LONG_AGO  # due (a success left it null), and ahead of anything new in the claim's order
        )
        if not ordered:  # the same backlog, nothing held: finished, so that only the new ones are due
            Delivery.objects.filter(organization=organization).update(status=DeliveryStatus.SUCCEEDED)
        bystander = Subscription.objects.create(
            organization=organization, callback_url="https://93.184.215.14/bench", events=["availability.changed"],
            secret="s" * 24, max_in_flight=users,
        )  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(FRESH_EVENTS_SQL, {"organization": organization.id, "events": users, "users": people})
        Subscription.objects.exclude(pk=bystander.pk).filter(organization=organization).update(active=False)
        relay_pending(batch_size=500)
        scans = {}
        for name, predicate in (("due_scan_ms", CLAIMABLE), ("due_scan_without_turns_ms", without_turns)):
            with connection.cursor() as cursor:  # the claim's due scan alone, apart from what else the claim does
                sql = f"SELECT id FROM deliveries_delivery WHERE {predicate} ORDER BY next_attempt_at LIMIT %s"
                scans[name] = min(timed(lambda sql=sql, c=cursor: c.execute(sql, [users]))[0] for _ in range(3)) * 1e3
                if explain:
                    cursor.execute(
                        "SELECT count(*) FILTER (WHERE next_attempt_at <= now()), count(*) FILTER (WHERE claimed_until"
                        " >= now()), count(ordering_key), min(next_attempt_at) FROM deliveries_delivery"
                        " WHERE status = 'pending'"
                    )
                    print("-- pending: due, under a live claim, with a key, earliest due:", cursor.fetchone())
                    cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", [users])
                    print(f"-- {name}, ordered={ordered}", *(row[0] for row in cursor.fetchall()), sep="\n")
        blocked_seconds, batch = timed(lambda: claim_due(batch_size=users, token=uuid.uuid4()))
        assert len(batch) == users, (len(batch), held)
        return {
            "relay_us_per_delivery": relay_seconds / (events * subs) * 1e6,
            "claim_us_per_delivery": claim_seconds / claimed * 1e6,
            "claim_behind_backlog_ms": blocked_seconds * 1e3,
            **scans,
            "backlog_held": float(Delivery.objects.filter(organization=organization, status="pending").count() - users),
        }
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM deliveries_deliveryattempt WHERE delivery_id IN"
                " (SELECT id FROM deliveries_delivery WHERE organization_id = %s)",
                [organization.id],
            )
            cursor.execute("DELETE FROM deliveries_delivery WHERE organization_id = %s", [organization.id])
            cursor.execute("DELETE FROM events_outbox WHERE organization_id = %s", [organization.id])
            cursor.execute("DELETE FROM events_event WHERE organization_id = %s", [organization.id])
        Subscription.objects.filter(organization=organization).delete()
        organization.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--subs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument("--explain", action="store_true", help="print the due scans' plans")
    args = parser.parse_args()
    setup_django()
    from deliveries import claims
    from deliveries.ordering import IN_TURN

    with_turns = claims.CLAIM_SQL
    without_turns = with_turns.replace(f" AND {IN_TURN}", "")  # the claim as it was before ordered delivery
    figures: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for number in range(args.rounds):
        for variant in VARIANTS[number % 3 :] + VARIANTS[: number % 3]:
            claims.CLAIM_SQL = without_turns if variant == "before" else with_turns  # claim_due reads it per call
            figures[variant].append(
                one_round(ordered=variant == "ordered", events=args.events, users=args.users, subs=args.subs,
                          explain=args.explain)
            )  # fmt: skip
            print(f"round {number + 1}, {variant}: {figures[variant][-1]}", file=sys.stderr)
    claims.CLAIM_SQL = with_turns
    print(f"{args.events} events x {args.subs} subscriptions, {args.users} keys, median of {args.rounds} rounds")
    print(f"{'':28}{'before':>10}{'unordered':>11}{'ordered':>10}{'u÷b':>7}{'o÷u':>7}")
    for name in ("relay_us_per_delivery", "claim_us_per_delivery", "claim_behind_backlog_ms", "due_scan_ms",
                 "due_scan_without_turns_ms", "backlog_held"):  # fmt: skip
        before, plain, kept = (statistics.median(f[name] for f in figures[variant]) for variant in VARIANTS)
        ratios = [f"{a / b:.2f}" if b else "-" for a, b in ((plain, before), (kept, plain))]
        print(f"{name:28}{before:10.1f}{plain:11.1f}{kept:10.1f}{ratios[0]:>7}{ratios[1]:>7}")


if __name__ == "__main__":
    main()
