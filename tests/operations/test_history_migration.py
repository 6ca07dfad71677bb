"""An install that already holds history migrates in place to the partitioned tables and loses nothing.

Runs the real migrations with ``manage.py`` on a database of its own: up to the last unpartitioned
schema, fills it as an older Sapien would have, then migrates to the head.
"""

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection

from tests.support.processes import ROOT

BEFORE = [
    ("events", "0004_drop_quota_notice_columns"),
    ("deliveries", "0004_blob_part"),
    ("subscriptions", "0003_list_index_for_cursor_pages"),
]


@pytest.fixture
def scratch_database(db) -> Iterator[str]:
    params = connection.settings_dict
    server = dict(host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432, user=params["USER"])
    name = f"sapien_migration_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://{server['user']}@{server['host']}:{server['port']}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrate(url: str, *target: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", *target, "--noinput", "-v", "0"],
        cwd=ROOT, env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "LOG_LEVEL": "ERROR"}, check=True,
    )  # fmt: skip


def test_existing_history_is_copied_into_day_partitions_with_its_event_times(scratch_database) -> None:
    for app, target in BEFORE:
        migrate(scratch_database, app, *([target] if target else []))
    now = datetime.now(UTC)
    organization, subscription = uuid.uuid4(), uuid.uuid4()
    events = {uuid.uuid4(): now - timedelta(days=age, minutes=5) for age in (2, 1, 0)}
    with psycopg.connect(scratch_database, autocommit=True) as db:
        db.execute(
            "INSERT INTO core_organization (id, name, tier, created_at) VALUES (%s, 'Acme', 'standard', now())",
            [organization],
        )
        db.execute(
            "INSERT INTO subscriptions_subscription (id, organization_id, callback_url, events, secret,"
            " previous_secret, active, description, disabled_reason, consecutive_failures, created_at, updated_at)"
            " VALUES (%s, %s, 'https://hooks.example.com/', '{*}', 'secret', '', true, '', '', 0, now(), now())",
            [subscription, organization],
        )
        for event_id, created in events.items():
            db.execute(
                "INSERT INTO events_event (id, organization_id, type, body, created_at, relayed_at)"
                " VALUES (%s, %s, 'person.created', '{}', %s, %s)",
                [event_id, organization, created, created],
            )
            delivery = db.execute(
                "INSERT INTO deliveries_delivery (id, organization_id, event_id, subscription_id, status,"
                " attempt_count, last_error, created_at, updated_at)"
                " VALUES (gen_random_uuid(), %s, %s, %s, 'succeeded', 1, '', %s, %s) RETURNING id",
                [organization, event_id, subscription, created, created],
            ).fetchone()
            db.execute(
                "INSERT INTO deliveries_deliveryattempt (delivery_id, number, started_at, duration_ms, succeeded,"
                " error, response_excerpt) VALUES (%s, 1, %s, 5, true, '', '')",
                [delivery[0] if delivery else None, created],
            )
        (last_attempt_id,) = db.execute("SELECT max(id) FROM deliveries_deliveryattempt").fetchone() or (0,)

    migrate(scratch_database)

    with psycopg.connect(scratch_database, autocommit=True) as db:
        copied = db.execute(
            "SELECT e.id, e.created_at, d.event_created_at, d.event_type, a.event_created_at,"
            " e.tableoid::regclass::text, d.tableoid::regclass::text, a.tableoid::regclass::text"
            " FROM events_event e JOIN deliveries_delivery d ON d.event_id = e.id"
            " JOIN deliveries_deliveryattempt a ON a.delivery_id = d.id"
        ).fetchall()
        assert {row[0]: row[1] for row in copied} == events
        for _, created, delivery_time, event_type, attempt_time, *partitions in copied:
            assert delivery_time == attempt_time == created and event_type == "person.created"
            assert partitions == [f"{table}_p{created:%Y%m%d}" for table in
                                  ("events_event", "deliveries_delivery", "deliveries_deliveryattempt")]  # fmt: skip
        new_attempt = db.execute(
            "INSERT INTO deliveries_deliveryattempt (delivery_id, event_created_at, number, started_at, duration_ms,"
            " succeeded, error, response_excerpt) SELECT id, event_created_at, 2, now(), 5, true, '', ''"
            " FROM deliveries_delivery LIMIT 1 RETURNING id"
        ).fetchone()
        assert new_attempt is not None and new_attempt[0] > last_attempt_id
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute(
                "INSERT INTO deliveries_delivery (id, organization_id, event_id, subscription_id, status,"
                " attempt_count, last_error, created_at, updated_at, event_created_at, event_type)"
                " SELECT gen_random_uuid(), organization_id, event_id, subscription_id, 'pending', 0, '', now(),"
                " now(), event_created_at, event_type FROM deliveries_delivery LIMIT 1"
            )
