"""The lists' indexes: each ends with (created_at DESC, id DESC), after the organization alone or after
an equality filter, so a cursor page (sapien.core.pagination) is one range of one index.

The new indexes are built concurrently (writes go on meanwhile, so no transaction), and only then is
(organization, -created_at) dropped, which (organization, -created_at, -id) covers.
"""

import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('core', '0002_tokenfailurecount'),
        ('entities', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='person',
            options={'ordering': ['-created_at', '-id']},
        ),
        migrations.AlterModelOptions(
            name='pet',
            options={'ordering': ['-created_at', '-id']},
        ),
        migrations.AlterModelOptions(
            name='toy',
            options={'ordering': ['-created_at', '-id']},
        ),
        AddIndexConcurrently(
            model_name='person',
            index=models.Index(fields=['organization', '-created_at', '-id'], name='person_org_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='person',
            index=models.Index(fields=['organization', 'status', '-created_at', '-id'], name='person_org_status_idx'),
        ),
        AddIndexConcurrently(
            model_name='person',
            index=models.Index(models.F('organization'), django.db.models.functions.text.Upper('email'), models.OrderBy(models.F('created_at'), descending=True), models.OrderBy(models.F('id'), descending=True), name='person_org_email_idx'),
        ),
        AddIndexConcurrently(
            model_name='pet',
            index=models.Index(fields=['organization', '-created_at', '-id'], name='pet_org_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='pet',
            index=models.Index(models.F('organization'), django.db.models.functions.text.Upper('type'), models.OrderBy(models.F('created_at'), descending=True), models.OrderBy(models.F('id'), descending=True), name='pet_org_type_idx'),
        ),
        AddIndexConcurrently(
            model_name='pet',
            index=models.Index(fields=['owner', '-created_at', '-id'], name='pet_owner_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='toy',
            index=models.Index(fields=['organization', '-created_at', '-id'], name='toy_org_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='toy',
            index=models.Index(fields=['pet', '-created_at', '-id'], name='toy_pet_created_idx'),
        ),
        RemoveIndexConcurrently(
            model_name='person',
            name='entities_pe_organiz_91af91_idx',
        ),
        RemoveIndexConcurrently(
            model_name='pet',
            name='entities_pe_organiz_33355f_idx',
        ),
        RemoveIndexConcurrently(
            model_name='toy',
            name='entities_to_organiz_81b635_idx',
        ),
    ]
