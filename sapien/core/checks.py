"""Settings that make a deployment unsafe: ``manage.py check --deploy`` errors, and a warning at every start.

The development ``SECRET_KEY`` is public, and it signs the blob links: whoever
knows it can forge a link that never expires to any blob whose id they know.
``check --deploy`` refuses it; and since gunicorn and Celery never run system
checks, every process that loads Django with ``DEBUG`` off says so in its log.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("sapien.security")

DEVELOPMENT_KEY_MESSAGE = (
    "SECRET_KEY is the public development key: anyone can sign blob links with it, "
    "to any payload whose id they know and valid for as long as they like."
)
DEVELOPMENT_KEY_HINT = (
    "Set SECRET_KEY to a long random string, the same in every process: "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
)


def uses_development_secret_key() -> bool:
    try:
        return bool(settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY)
    except ImproperlyConfigured:  # an empty SECRET_KEY: Django refuses it where it is used
        return False


@register(Tags.security, deploy=True)
def development_secret_key_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not uses_development_secret_key():
        return []
    return [Error(DEVELOPMENT_KEY_MESSAGE, hint=DEVELOPMENT_KEY_HINT, id="sapien.E001")]


def warn_of_development_secret_key() -> None:
    """Called once per process from ``CoreConfig.ready``: web, worker, beat, relay and ``manage.py`` alike."""
    if not settings.DEBUG and uses_development_secret_key():
        logger.warning("%s %s. Only acceptable on your own machine (make run).", DEVELOPMENT_KEY_MESSAGE,
                       DEVELOPMENT_KEY_HINT)  # fmt: skip
