"""The command lines of Sapien's four processes, defined once: web, relay, worker and beat.

``make run`` (``sapien.launcher``), the Docker image and compose file, the end-to-end tests and
the bench all start their processes from these functions; what may differ between them is a
keyword argument. Each command runs from the project root (where ``manage.py`` is).

- web: gunicorn with ``sapien.gunicorn_conf`` (access log without query strings, request limits).
- worker: one queue, ``sapien``; ``--concurrency`` processes that each consume and run their own tasks
  (Celery's ``solo`` pool, no prefork parent passing each task on); no gossip, mingle or event heartbeats,
  which Sapien does not use (nothing revokes tasks or watches worker events) and which cost broker traffic
  per worker. Started by ``sapien.worker`` rather than ``celery worker``, whose command line costs each
  process 8 MB of imports.
- beat: ``sapien.beat`` rather than ``celery beat``, for the same reason.

``python -m sapien.processes ROLE`` replaces itself with the role's process (the Docker image's
entry point); ``--print`` shows the command line instead. Defaults come from ``PORT``,
``WEB_CONCURRENCY``, ``WEB_THREADS`` and ``WORKER_CONCURRENCY``.
"""

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

PYTHON = sys.executable
GUNICORN_CONFIG = "python:sapien.gunicorn_conf"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the web role serves the network; tests and the bench pass 127.0.0.1


def web(
    *, port: int = 8080, host: str = ALL_INTERFACES, workers: int = 2, threads: int = 1, access_log: bool = True,
    log_level: str = "info",
) -> list[str]:  # fmt: skip
    """gunicorn's ``sync`` workers, one request at a time each; ``threads`` above 1 runs ``gthread`` workers instead.

    Chosen by measurement (``bench/api_profile.py --served``, docs/operations.md "The web process"): with
    PostgreSQL on the same host a request waits little, and 2 workers of 4 threads served about as many
    creates per second as 2 sync workers, a quarter fewer lists, at more CPU per request (the threads
    contend for one GIL). Threads may pay where the database is far; each holds its own connection.
    """
    command = [PYTHON, "-m", "gunicorn", "sapien.wsgi", "--config", GUNICORN_CONFIG, "--bind", f"{host}:{port}",
               "--workers", str(workers), "--log-level", log_level]  # fmt: skip
    if threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(threads)]
    return [*command, "--access-logfile", "-"] if access_log else command


def relay() -> list[str]:
    return [PYTHON, "manage.py", "run_relay"]


def worker(*, concurrency: int = 2, name: str | None = None, log_level: str = "INFO") -> list[str]:
    """``concurrency`` worker processes; ``name`` is Celery's node name (``name@%h``, by default ``celery@`` the
    host name), which each of several processes numbers (``name-1@%h``...)."""
    command = [PYTHON, "-m", "sapien.worker", "-Q", "sapien", "--concurrency", str(concurrency),
               "--loglevel", log_level]  # fmt: skip
    return [*command, "-n", name] if name else command


def beat(*, schedule: Path | str, log_level: str = "WARNING") -> list[str]:
    """``schedule`` is beat's state file. Run exactly one beat per deployment."""
    return [PYTHON, "-m", "sapien.beat", "--schedule", str(schedule), "--loglevel", log_level]


def command_for(args: argparse.Namespace) -> list[str]:
    if args.role == "web":
        return web(port=args.port, host=args.host, workers=args.workers, threads=args.threads)
    if args.role == "relay":
        return relay()
    if args.role == "worker":
        return worker(concurrency=args.concurrency, name=args.name)
    return beat(schedule=args.schedule)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapien.processes", description="Run one of Sapien's processes.")
    parser.add_argument("--print", action="store_true", help="print the command line instead of running it")
    roles = parser.add_subparsers(dest="role", required=True)
    web_parser = roles.add_parser("web", help="gunicorn")
    web_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    web_parser.add_argument("--host", default=ALL_INTERFACES)
    web_parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    web_parser.add_argument("--threads", type=int, default=int(os.environ.get("WEB_THREADS", "1")))
    roles.add_parser("relay", help="the outbox relay")
    worker_parser = roles.add_parser("worker", help="a Celery worker")
    worker_parser.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "2")))
    worker_parser.add_argument("--name", help="Celery node name, e.g. worker1@%%h")
    beat_parser = roles.add_parser("beat", help="Celery beat (exactly one per deployment)")
    beat_parser.add_argument("--schedule", default=str(Path(tempfile.gettempdir()) / "celerybeat-schedule"))
    args = parser.parse_args(argv)
    command = command_for(args)
    if args.print:
        print(shlex.join(command))
        return 0
    os.execv(command[0], command)  # noqa: S606 - our own command line, in place of this process


if __name__ == "__main__":
    sys.exit(main())
