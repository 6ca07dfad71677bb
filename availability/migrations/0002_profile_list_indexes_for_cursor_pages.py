"""The profile list's indexes: a cursor page (sapien.core.pagination) is one range of one of them, for an
organization (a client token) or for one user (a user token, or ``user_id``).

Built concurrently, so writes go on while they build: the migration cannot run in a transaction.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('availability', '0001_initial'),
        ('core', '0002_tokenfailurecount'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='availabilityprofile',
            index=models.Index(fields=['organization', '-created_at', '-id'], name='profile_org_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='availabilityprofile',
            index=models.Index(fields=['user', '-created_at', '-id'], name='profile_user_created_idx'),
        ),
    ]
