"""``events_event`` becomes a table partitioned by day on ``created_at``, its rows copied in place.

The table is rebuilt under the same name: the old one is renamed, a partitioned one created with
a partition per day from its oldest row's day to ``DAYS_AHEAD`` days ahead (and a default partition), the rows
copied, the old table dropped, and the keys and indexes built on the new one. The primary key
becomes (id, created_at): PostgreSQL requires the partition key in every unique constraint. The
foreign keys other tables held to ``events_event(id)`` go with the old table (``deliveries`` keeps
those links in code from its next migration on). It holds the table locked while it copies: see
docs/operations.md, "Upgrading to partitioned history".
"""

from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone

from sapien.core.partitions import DAYS_AHEAD, create_default_partition, ensure_day_partitions, utc_day

CREATE = """
ALTER TABLE events_event RENAME TO events_event_unpartitioned;
CREATE TABLE events_event (
    id uuid NOT NULL,
    type varchar(64) NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    relayed_at timestamptz,
    recipient_id uuid,
    organization_id uuid NOT NULL
) PARTITION BY RANGE (created_at);
"""

COPY = """
INSERT INTO events_event (id, type, body, created_at, relayed_at, recipient_id, organization_id)
SELECT id, type, body, created_at, relayed_at, recipient_id, organization_id FROM events_event_unpartitioned;
DROP TABLE events_event_unpartitioned CASCADE;
"""

KEYS_AND_INDEXES = """
ALTER TABLE events_event ADD CONSTRAINT events_event_pkey PRIMARY KEY (id, created_at);
ALTER TABLE events_event ADD CONSTRAINT events_event_organization_id_b68d0961_fk_core_organization_id
    FOREIGN KEY (organization_id) REFERENCES core_organization (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX event_outbox_idx ON events_event (created_at) WHERE relayed_at IS NULL;
CREATE INDEX event_org_created_idx ON events_event (organization_id, created_at DESC, id DESC);
CREATE INDEX event_org_type_created_idx ON events_event (organization_id, type, created_at DESC, id DESC);
CREATE INDEX event_created_idx ON events_event (created_at DESC, id DESC);
"""


def partition_events(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT min(created_at) FROM events_event")
        (oldest,) = cursor.fetchone()
        cursor.execute(CREATE)
        create_default_partition(cursor, "events_event")
        today = utc_day(timezone.now())
        first = min(utc_day(oldest), today) if oldest else today
        ensure_day_partitions(cursor, "events_event", "created_at", first, today + timedelta(days=DAYS_AHEAD))
        cursor.execute(COPY)
        cursor.execute(KEYS_AND_INDEXES)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_tokenfailurecount"),
        ("events", "0004_drop_quota_notice_columns"),
        # The tables whose foreign keys to events_event(id) this drops must exist first.
        ("deliveries", "0004_blob_part"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition_events)],
            state_operations=[
                migrations.AlterModelOptions(name="event", options={"ordering": ["-created_at", "-id"]}),
                migrations.RemoveIndex(model_name="event", name="event_org_created_idx"),
                migrations.RemoveIndex(model_name="event", name="event_org_type_created_idx"),
                migrations.RemoveIndex(model_name="event", name="event_created_idx"),
                migrations.AddIndex(
                    model_name="event",
                    index=models.Index(fields=["organization", "-created_at", "-id"], name="event_org_created_idx"),
                ),
                migrations.AddIndex(
                    model_name="event",
                    index=models.Index(
                        fields=["organization", "type", "-created_at", "-id"], name="event_org_type_created_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="event",
                    index=models.Index(fields=["-created_at", "-id"], name="event_created_idx"),
                ),
            ],
        ),
    ]
