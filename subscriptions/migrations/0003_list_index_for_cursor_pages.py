"""The subscription list's index: a cursor page (sapien.core.pagination) is one range of it.

Built concurrently, so writes go on while it builds: the migration cannot run in a transaction.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('core', '0002_tokenfailurecount'),
        ('subscriptions', '0002_subscription_consecutive_failures_and_more'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='subscription',
            options={'ordering': ['-created_at', '-id']},
        ),
        AddIndexConcurrently(
            model_name='subscription',
            index=models.Index(fields=['organization', '-created_at', '-id'], name='subscription_org_created_idx'),
        ),
    ]
