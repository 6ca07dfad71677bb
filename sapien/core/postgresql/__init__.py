"""Django's PostgreSQL backend as Sapien uses it (``base.DatabaseWrapper``)."""
