"""The entities' foreign keys lose their lone indexes: each is the first column of a list index
(``*_org_created_idx``, ``pet_owner_created_idx``, ``toy_pet_created_idx``), which serves every lookup the lone
one did (the lists, the cascades, the foreign key checks). One index write less per entity created.

Only the indexes go, each dropped concurrently (writes go on meanwhile, so no transaction); the foreign key
constraints stay as they are, where Django's own ``AlterField`` would drop and re-add (and re-validate) them.
"""

import django.db.models.deletion
from django.db import migrations, models

DROPPED = [  # (index, table, column)
    ("entities_person_organization_id_ae8771ed", "entities_person", "organization_id"),
    ("entities_pet_organization_id_3bd86fa1", "entities_pet", "organization_id"),
    ("entities_pet_owner_id_98fa52cb", "entities_pet", "owner_id"),
    ("entities_toy_organization_id_2cf59358", "entities_toy", "organization_id"),
    ("entities_toy_pet_id_df1036e3", "entities_toy", "pet_id"),
]


def foreign_key(to: str, related_name: str, **options: object) -> models.ForeignKey:
    return models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name=related_name, to=to, **options
    )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY

    dependencies = [
        ("core", "0003_idempotencyrecord"),
        ("entities", "0002_list_indexes_for_cursor_pages"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField("person", "organization", foreign_key("core.organization", "persons")),
                migrations.AlterField("pet", "organization", foreign_key("core.organization", "pets")),
                migrations.AlterField(
                    "pet", "owner", foreign_key("entities.person", "pets", blank=True, null=True)
                ),
                migrations.AlterField("toy", "organization", foreign_key("core.organization", "toys")),
                migrations.AlterField("toy", "pet", foreign_key("entities.pet", "toys", blank=True, null=True)),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
                )
                for index, table, column in DROPPED
            ],
        ),
    ]
