"""Deliveries and their attempts become tables partitioned by day on their event's time, rows copied in place.

Each delivery and attempt gains ``event_created_at`` (its event's ``created_at``, the partition
key, the same day as its event's partition) and each delivery ``event_type``, filled from the
events as the rows are copied. Both tables are rebuilt under their names as ``events_event`` was
(events 0005): renamed, created partitioned with a partition per day from the oldest event's day
to ``DAYS_AHEAD`` days ahead and a default one, copied, the old tables dropped, keys and indexes built. Primary
keys become (id, event_created_at) and the one-delivery-per-event-and-subscription constraint
takes ``event_created_at`` too; the links between events, deliveries, attempts and blobs are
kept by the code (a foreign key to a partitioned table would have to name its partition key).
Attempt ids come from a sequence (PostgreSQL 15 has no identity columns on partitioned tables).
"""

from datetime import timedelta

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

from sapien.core.partitions import DAYS_AHEAD, create_default_partition, ensure_day_partitions, utc_day

CREATE = """
ALTER TABLE deliveries_delivery RENAME TO deliveries_delivery_unpartitioned;
ALTER TABLE deliveries_deliveryattempt RENAME TO deliveries_deliveryattempt_unpartitioned;
CREATE TABLE deliveries_delivery (
    id uuid NOT NULL,
    status varchar(16) NOT NULL,
    attempt_count integer NOT NULL,
    next_attempt_at timestamptz,
    claim_token uuid,
    claimed_until timestamptz,
    last_status_code integer,
    last_error text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    event_id uuid NOT NULL,
    organization_id uuid NOT NULL,
    subscription_id uuid NOT NULL,
    event_created_at timestamptz NOT NULL,
    event_type varchar(64) NOT NULL,
    CONSTRAINT deliveries_delivery_attempt_count_check CHECK (attempt_count >= 0),
    CONSTRAINT deliveries_delivery_last_status_code_check CHECK (last_status_code >= 0)
) PARTITION BY RANGE (event_created_at);
CREATE TABLE deliveries_deliveryattempt (
    id bigint NOT NULL,
    number integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    succeeded boolean NOT NULL,
    error text NOT NULL,
    response_excerpt text NOT NULL,
    delivery_id uuid NOT NULL,
    event_created_at timestamptz NOT NULL,
    CONSTRAINT deliveries_deliveryattempt_duration_ms_check CHECK (duration_ms >= 0),
    CONSTRAINT deliveries_deliveryattempt_number_check CHECK (number >= 0),
    CONSTRAINT deliveries_deliveryattempt_status_code_check CHECK (status_code >= 0)
) PARTITION BY RANGE (event_created_at);
"""

COPY = """
INSERT INTO deliveries_delivery (
    id, status, attempt_count, next_attempt_at, claim_token, claimed_until, last_status_code, last_error,
    created_at, updated_at, completed_at, event_id, organization_id, subscription_id, event_created_at, event_type
)
SELECT d.id, d.status, d.attempt_count, d.next_attempt_at, d.claim_token, d.claimed_until, d.last_status_code,
       d.last_error, d.created_at, d.updated_at, d.completed_at, d.event_id, d.organization_id, d.subscription_id,
       e.created_at, e.type
FROM deliveries_delivery_unpartitioned d JOIN events_event e ON e.id = d.event_id;
INSERT INTO deliveries_deliveryattempt (
    id, number, started_at, duration_ms, status_code, succeeded, error, response_excerpt, delivery_id, event_created_at
)
SELECT a.id, a.number, a.started_at, a.duration_ms, a.status_code, a.succeeded, a.error, a.response_excerpt,
       a.delivery_id, d.event_created_at
FROM deliveries_deliveryattempt_unpartitioned a JOIN deliveries_delivery d ON d.id = a.delivery_id;
"""

KEYS_AND_INDEXES = """
DROP TABLE deliveries_deliveryattempt_unpartitioned;
DROP TABLE deliveries_delivery_unpartitioned;
CREATE SEQUENCE deliveries_deliveryattempt_id_seq START WITH {next_attempt_id} OWNED BY deliveries_deliveryattempt.id;
ALTER TABLE deliveries_deliveryattempt ALTER COLUMN id SET DEFAULT nextval('deliveries_deliveryattempt_id_seq');
ALTER TABLE deliveries_delivery ADD CONSTRAINT deliveries_delivery_pkey PRIMARY KEY (id, event_created_at);
ALTER TABLE deliveries_delivery ADD CONSTRAINT delivery_one_per_event_subscription
    UNIQUE (event_id, subscription_id, event_created_at);
ALTER TABLE deliveries_delivery ADD CONSTRAINT deliveries_delivery_organization_id_dba64a07_fk_core_orga
    FOREIGN KEY (organization_id) REFERENCES core_organization (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE deliveries_delivery ADD CONSTRAINT deliveries_delivery_subscription_id_d5d6da39_fk_subscript
    FOREIGN KEY (subscription_id) REFERENCES subscriptions_subscription (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX delivery_due_idx ON deliveries_delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX delivery_sub_log_idx ON deliveries_delivery (subscription_id, event_created_at DESC, id DESC);
CREATE INDEX delivery_sub_status_idx ON deliveries_delivery (subscription_id, status, event_created_at DESC, id DESC);
CREATE INDEX delivery_sub_type_idx ON deliveries_delivery (subscription_id, event_type, event_created_at DESC, id DESC);
ALTER TABLE deliveries_deliveryattempt ADD CONSTRAINT deliveries_deliveryattempt_pkey PRIMARY KEY (id, event_created_at);
CREATE INDEX attempt_delivery_idx ON deliveries_deliveryattempt (delivery_id, number);
CREATE INDEX delivery_event_created_idx ON deliveries_delivery (event_created_at DESC, id DESC);
CREATE INDEX attempt_started_idx ON deliveries_deliveryattempt (started_at DESC, id DESC);
"""


def partition_deliveries(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT min(created_at) FROM events_event")
        (oldest,) = cursor.fetchone()
        cursor.execute(CREATE)
        today = utc_day(timezone.now())
        first = min(utc_day(oldest), today) if oldest else today
        for table in ("deliveries_delivery", "deliveries_deliveryattempt"):
            create_default_partition(cursor, table)
            ensure_day_partitions(cursor, table, "event_created_at", first, today + timedelta(days=DAYS_AHEAD))
        cursor.execute(COPY)
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM deliveries_deliveryattempt_unpartitioned")
        (next_attempt_id,) = cursor.fetchone()
        cursor.execute(KEYS_AND_INDEXES.format(next_attempt_id=int(next_attempt_id)))


def linked_in_code(model_name: str, name: str, related_name: str, to: str) -> migrations.AlterField:
    return migrations.AlterField(
        model_name=model_name,
        name=name,
        field=models.ForeignKey(
            db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
            related_name=related_name, to=to,
        ),  # fmt: skip
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_tokenfailurecount"),
        ("deliveries", "0005_outcome_counters"),
        ("events", "0005_partition_events_by_day"),
        ("subscriptions", "0002_subscription_consecutive_failures_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition_deliveries)],
            state_operations=[
                migrations.AlterModelOptions(
                    name="delivery",
                    options={"ordering": ["-event_created_at", "-id"], "verbose_name_plural": "deliveries"},
                ),
                migrations.RemoveConstraint(model_name="delivery", name="delivery_one_per_event_subscription"),
                migrations.RemoveIndex(model_name="delivery", name="delivery_subscription_log_idx"),
                migrations.RemoveIndex(model_name="delivery", name="delivery_created_idx"),
                migrations.AddField(
                    model_name="delivery", name="event_created_at", field=models.DateTimeField(default=None),
                    preserve_default=False,
                ),  # fmt: skip
                migrations.AddField(
                    model_name="delivery", name="event_type", field=models.CharField(default=None, max_length=64),
                    preserve_default=False,
                ),  # fmt: skip
                migrations.AddField(
                    model_name="deliveryattempt", name="event_created_at", field=models.DateTimeField(default=None),
                    preserve_default=False,
                ),  # fmt: skip
                linked_in_code("blob", "event", "blobs", "events.event"),
                linked_in_code("delivery", "event", "deliveries", "events.event"),
                linked_in_code("deliveryattempt", "delivery", "attempts", "deliveries.delivery"),
                migrations.AlterField(
                    model_name="delivery",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+",
                        to="core.organization",
                    ),  # fmt: skip
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(fields=["subscription", "-event_created_at", "-id"], name="delivery_sub_log_idx"),
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(
                        fields=["subscription", "status", "-event_created_at", "-id"], name="delivery_sub_status_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(
                        fields=["subscription", "event_type", "-event_created_at", "-id"], name="delivery_sub_type_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(fields=["-event_created_at", "-id"], name="delivery_event_created_idx"),
                ),
                migrations.AddIndex(
                    model_name="deliveryattempt",
                    index=models.Index(fields=["-started_at", "-id"], name="attempt_started_idx"),
                ),
                migrations.AddConstraint(
                    model_name="delivery",
                    constraint=models.UniqueConstraint(
                        fields=("event", "subscription", "event_created_at"), name="delivery_one_per_event_subscription"
                    ),
                ),
            ],
        ),
    ]
