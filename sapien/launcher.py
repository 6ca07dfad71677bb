"""``make run`` and ``make test``: the whole platform, on embedded services when none are named.

``python -m sapien.launcher run`` starts PostgreSQL and Redis from PyPI packages
when ``DATABASE_URL`` / ``ESL_BROKER_URL`` are unset (data kept in ``.data/``),
migrates, then runs the web server, the relay, a Celery worker and beat
(``sapien.processes``) under ``sapien.supervisor``, which restarts each one that
exits on its own backoff, until Ctrl-C, which stops everything it started.

``python -m sapien.launcher test -- CMD…`` runs CMD with a throwaway embedded
PostgreSQL and Redis (unless the variables name real ones), then stops them.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sapien import processes
from sapien.embedded import (
    PG_DEFAULT_PORT,
    REDIS_DEFAULT_PORT,
    EmbeddedError,
    EmbeddedService,
    start_postgres,
    start_redis,
)
from sapien.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def embedded_services(data_dir: Path, env: dict[str, str], *, fixed_ports: bool) -> list[EmbeddedService]:
    """Starts what the environment does not name, and points the environment at it.

    With ``fixed_ports`` the servers take the ports the settings default to, so that
    ``manage.py`` in another terminal finds them without any variable set.
    """
    started: list[EmbeddedService] = []
    if not env.get("DATABASE_URL"):
        pg_port = PG_DEFAULT_PORT if fixed_ports else None
        postgres = start_postgres(data_dir=data_dir / "postgres", port=pg_port, database="sapien")
        env["DATABASE_URL"] = postgres.url
        started.append(postgres)
        print(f"Embedded PostgreSQL: {postgres.url}", file=sys.stderr)
    if not env.get("ESL_BROKER_URL"):
        redis = start_redis(data_dir=data_dir / "redis", port=REDIS_DEFAULT_PORT if fixed_ports else None)
        env["ESL_BROKER_URL"] = redis.url
        started.append(redis)
        print(f"Embedded Redis: {redis.url}", file=sys.stderr)
    return started


def stop_all(services: list[EmbeddedService]) -> None:
    for service in reversed(services):
        service.stop()


QUICK_START = """
Sapien ESL is running on http://localhost:{port}  (admin at /admin/, API docs at /api/docs/)

Get a token (in another terminal, from this folder):
  ORG=$(.venv/bin/python manage.py create_organization "Acme" --tier standard | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  .venv/bin/python manage.py create_client "$ORG" --name my-app --scopes "entities:read entities:write events:read events:subscribe"
  curl -s -X POST http://localhost:{port}/oauth/token -d grant_type=client_credentials -d client_id=CLIENT_ID -d client_secret=CLIENT_SECRET

The README's quick start goes on from there. Ctrl-C stops everything.
"""  # noqa: E501


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env.setdefault("ESL_PUBLIC_URL", f"http://localhost:{args.port}")
    data_dir = ROOT / ".data"
    try:
        services = embedded_services(data_dir, env, fixed_ports=True)
    except EmbeddedError as exc:
        print(f"Could not start the embedded services: {exc}\n"
              "Set DATABASE_URL and ESL_BROKER_URL to use servers of your own.", file=sys.stderr)  # fmt: skip
        return 1
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        supervisor = Supervisor(
            {
                "web": processes.web(port=args.port, workers=args.web_workers),
                "relay": processes.relay(),
                "worker": processes.worker(concurrency=args.worker_concurrency),
                "beat": processes.beat(schedule=data_dir / "celerybeat-schedule"),
            },
            cwd=ROOT,
            env=env,
        )
        quick_start = QUICK_START.format(port=args.port)
        supervisor.run_until_signalled(started=lambda: print(quick_start, file=sys.stderr, flush=True))
        return 0
    finally:
        stop_all(services)


def test(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    data_dir = Path(tempfile.mkdtemp(prefix="sapien-test-", dir=ROOT / ".data" if (ROOT / ".data").exists() else None))
    services = embedded_services(data_dir, env, fixed_ports=False)
    try:
        return subprocess.run(args.command, cwd=ROOT, env=env, check=False).returncode
    finally:
        stop_all(services)
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapien.launcher")
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run", help="run the whole platform")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    run_parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    run_parser.add_argument("--worker-concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "2")))
    test_parser = sub.add_parser("test", help="run a command against throwaway embedded services")
    test_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.action == "test":
        args.command = [part for part in args.command if part != "--"] or [PYTHON, "-m", "pytest"]
        return test(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
