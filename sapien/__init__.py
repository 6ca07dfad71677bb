"""Sapien ESL: a webhook delivery platform.

The Celery app is imported by ``sapien.core.apps`` once Django is ready, so that
light-weight modules such as ``sapien.embedded`` can be run without Django.
"""

__version__ = "1.0.0"
