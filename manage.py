#!/usr/bin/env python
"""Django's command-line utility for Sapien ESL."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
    from sapien.core.tracing import keep_opentelemetry_out_unless_configured

    keep_opentelemetry_out_unless_configured()
    from django.core.management import execute_from_command_line

    import sapien.celery  # noqa: F401 - the Celery app, for the commands that publish (the relay)

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
