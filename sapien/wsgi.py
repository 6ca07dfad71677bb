"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")

from sapien.core import tracing

# Before the handler is made: Django's instrumentation is a middleware (docs/operations.md, "Traces").
tracing.start_unless_deferred(service="web")
application = get_wsgi_application()
