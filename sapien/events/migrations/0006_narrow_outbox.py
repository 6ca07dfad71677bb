"""The outbox moves out of the event log into ``events_outbox``, which holds only what fan-out needs.

Events not relayed yet get their entry here; the event rows lose ``relayed_at`` and its partial
index, so the relay never rewrites an event (and its body) again.
"""

import django.db.models.deletion
from django.db import migrations, models

COPY_UNRELAYED = """
INSERT INTO events_outbox (created_at, event_id, organization_id, type, recipient_id)
SELECT created_at, id, organization_id, type, recipient_id FROM events_event WHERE relayed_at IS NULL
"""
# Back to the old layout: what left the outbox was relayed (at an unknown time; the event's own stands in).
MARK_RELAYED = """
UPDATE events_event e SET relayed_at = e.created_at
WHERE NOT EXISTS (SELECT 1 FROM events_outbox o WHERE o.created_at = e.created_at AND o.event_id = e.id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_tokenfailurecount"),
        ("events", "0005_partition_events_by_day"),
    ]

    operations = [
        migrations.CreateModel(
            name="OutboxEntry",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "created_at", "event_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("created_at", models.DateTimeField()),
                ("event_id", models.UUIDField()),
                ("type", models.CharField(max_length=64)),
                ("recipient_id", models.UUIDField(blank=True, null=True)),
                (
                    "organization",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="core.organization",
                    ),
                ),
            ],
            options={"verbose_name_plural": "outbox entries", "db_table": "events_outbox"},
        ),
        migrations.RunSQL(COPY_UNRELAYED, reverse_sql=MARK_RELAYED),
        migrations.RemoveIndex(model_name="event", name="event_outbox_idx"),
        migrations.RemoveField(model_name="event", name="relayed_at"),
    ]
