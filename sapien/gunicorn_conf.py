"""gunicorn's settings for Sapien's web process, wherever it runs: ``gunicorn -c python:sapien.gunicorn_conf``.

``sapien.processes.web()`` passes this module to gunicorn for ``make run``, the Docker image, the
tests and the bench; the bind address, the worker count and whether there is an access log are
its arguments. Every module-level name that is a gunicorn setting is read as one.

- The access log names the path only (``%(U)s``), never the query string: signed blob links
  (``?expires=…&signature=…``) and tokens sent in a URL stay out of it. gunicorn's own error
  lines (``Invalid request from ip=…: …`` quotes the request line) go through the same
  credential filter as Django's.
- The request limits are gunicorn's largest, so that Django answers (with the JSON error shape)
  anything a client may reasonably send; what is larger still gets gunicorn's own plain answer
  (docs/operations.md, "What gunicorn answers itself").
- The application is loaded once, in the master, and forked into the workers, its objects kept out
  of the garbage collector's reach (``when_ready``): the workers share its memory instead of each
  holding a copy (docs/operations.md, "The web process"). A code change needs a restart, not a HUP.
"""

import gc
from typing import Any

from gunicorn import glogging

from sapien.core import tracing
from sapien.core.logging import RedactCredentialsFilter

access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
graceful_timeout = 5
# No ``gunicornc`` control socket: nothing uses it, and gunicorns of one user would share its path.
control_socket_disable = True

# The request line (method, URL, version) up to 8190 bytes, gunicorn's maximum: larger is a 414.
limit_request_line = 8190
# Up to 100 header fields of up to 8190 bytes each: more, or larger, is a 431 or a 400.
limit_request_fields = 100
limit_request_field_size = 8190


class RedactingLogger(glogging.Logger):
    """gunicorn's logger, with ``RedactCredentialsFilter`` on the handlers of its error and access logs."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(existing, RedactCredentialsFilter) for existing in handler.filters):
                    handler.addFilter(RedactCredentialsFilter())


logger_class = RedactingLogger

preload_app = True
tracing.keep_opentelemetry_out_unless_configured()  # before the application (and redis-py) loads
# The master loads the application (and with it tracing's instrumentations, when configured); each worker sets
# tracing's SDK up once forked (``post_fork``), since its export thread would not survive the fork.
tracing.defer_start_to_fork()


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, once forked: tracing, when configured (without preload, the worker's own load starts it)."""
    if server.cfg.preload_app:
        tracing.start(service="web")


def when_ready(server: Any) -> None:
    """In the master, once the application is loaded and before any worker is forked.

    The token endpoint's views are loaded here too (django-oauth-toolkit's, which load cryptography, deferred in
    every other process: sapien/core/deferred_imports.py): every worker soon needs them, and loaded here they are
    shared rather than loaded by each worker into pages of its own. The rest of the URLconf still loads in each
    worker on its first request: loading it here would add 7 MB to the master for a few MB less per worker. No
    database connection opened while loading may be shared by the workers; and what loading made is frozen, so
    that a worker's collections never write to (and so copy) the pages it shares with the others.
    """
    if not server.cfg.preload_app:  # turned off on the command line: the master loaded nothing
        return
    from django.db import connections

    import sapien.core.oauth_views  # noqa: F401 - loading it is the point

    connections.close_all()
    gc.collect()
    gc.freeze()
