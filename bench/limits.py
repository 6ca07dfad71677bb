"""Physical limits measured in the same run, each in a process of its own.

    python bench/limits.py http --port P --seconds S
        one keep-alive connection (http.client) posting a pre-signed ~1 KB webhook in a loop
    python bench/limits.py pg --url URL --seconds S [--conns N]
        single-row autocommit INSERTs from N connections (one thread each)
    python bench/limits.py relay-sql --url URL --events N --subs M --batch B
        the simplest claim-and-insert relay in raw SQL: DELETE ... SKIP LOCKED RETURNING -> INSERT fan-out

Each prints one JSON object. Work is bounded by time (and by row count for relay-sql).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import statistics
import threading
import time
import uuid


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def http_limit(port: int, seconds: float) -> dict[str, object]:
    body = json.dumps({"id": str(uuid.uuid4()), "type": "person.created", "data": {"notes": "x" * 900}}).encode()
    secret = b"whsk_benchmark-secret"
    msg_id, stamp = str(uuid.uuid4()), str(int(time.time()))
    signature = base64.b64encode(hmac.new(secret, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    headers = {
        "Content-Type": "application/json",
        "X-Sapien-Signature": hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + signature.decode(),
        "X-Sapien-Delivery": "limit-probe",
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        conn.request("POST", "/limit", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"receiver answered {response.status}")
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    conn.close()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def pg_limit(url: str, seconds: float, conns: int) -> dict[str, object]:
    import psycopg

    table = f"bench_insert_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, body text NOT NULL)")
    counts: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()
    payload = "x" * 1000

    def loop() -> None:
        done, local = 0, []
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                conn.execute(f"INSERT INTO {table} (body) VALUES (%s)", (payload,))
                local.append(time.perf_counter() - began)
                done += 1
        with lock:
            counts.append(done)
            latencies.extend(local)

    started = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP TABLE {table}")
    return {
        "conns": conns,
        "rows": sum(counts),
        "seconds": elapsed,
        "rows_per_s": sum(counts) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else None,
    }


RELAY_SQL = """
WITH claimed AS (
    DELETE FROM {outbox} WHERE id IN (
        SELECT id FROM {outbox} ORDER BY id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
    ) RETURNING id, org
), fanned AS (
    INSERT INTO {delivery} (event_id, sub_id)
    SELECT c.id, s.id FROM claimed c JOIN {subs} s ON s.org = c.org
    RETURNING 1
)
SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM fanned)
"""


def relay_sql(url: str, events: int, subs: int, batch: int) -> dict[str, object]:
    import psycopg

    tag = uuid.uuid4().hex[:8]
    outbox, delivery, subs_table = f"bench_outbox_{tag}", f"bench_delivery_{tag}", f"bench_subs_{tag}"
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE TABLE {subs_table} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org int)")
            conn.execute(
                f"CREATE TABLE {outbox} (id bigserial PRIMARY KEY, org int NOT NULL, body text NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(
                f"CREATE TABLE {delivery} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), event_id bigint NOT NULL,"
                " sub_id uuid NOT NULL, status text NOT NULL DEFAULT 'pending',"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(f"INSERT INTO {subs_table} (org) SELECT 1 FROM generate_series(1, %s)", (subs,))
            conn.execute(
                f"INSERT INTO {outbox} (org, body) SELECT 1, repeat('x', 1000) FROM generate_series(1, %s)",
                (events,),
            )
            conn.execute(f"ANALYZE {outbox}")
            statement = RELAY_SQL.format(outbox=outbox, delivery=delivery, subs=subs_table)
            moved = fanned = 0
            started = time.perf_counter()
            for _ in range(events // max(batch, 1) + 2):  # bounded: one more pass than needed
                with conn.transaction():
                    row = conn.execute(statement, {"batch": batch}).fetchone()
                assert row is not None
                moved += row[0]
                fanned += row[1]
                if row[0] < batch:
                    break
            elapsed = time.perf_counter() - started
        finally:
            for table in (outbox, delivery, subs_table):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
    return {"events": moved, "deliveries": fanned, "seconds": elapsed, "batch_size": batch}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    http_parser = sub.add_parser("http")
    http_parser.add_argument("--port", type=int, required=True)
    http_parser.add_argument("--seconds", type=float, default=5)
    pg_parser = sub.add_parser("pg")
    pg_parser.add_argument("--url", required=True)
    pg_parser.add_argument("--seconds", type=float, default=5)
    pg_parser.add_argument("--conns", type=int, default=1)
    relay_parser = sub.add_parser("relay-sql")
    relay_parser.add_argument("--url", required=True)
    relay_parser.add_argument("--events", type=int, required=True)
    relay_parser.add_argument("--subs", type=int, required=True)
    relay_parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.action == "http":
        out = http_limit(args.port, args.seconds)
    elif args.action == "pg":
        out = pg_limit(args.url, args.seconds, args.conns)
    else:
        out = relay_sql(args.url, args.events, args.subs, args.batch)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
