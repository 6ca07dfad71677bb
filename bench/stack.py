"""The services and Sapien's processes, on loopback, in a temporary directory.

``Services`` holds the embedded PostgreSQL and Redis (``sapien.embedded``, free
ports) and, when one answers, a RabbitMQ virtual host of the bench's own.
``SapienStack`` runs migrate, then gunicorn (2 workers), the relay, one Celery
worker (2 processes) and beat against one broker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

from bench.procs import HOST, ROOT, MemorySampler, Proc, free_port, wait_port

PYTHON = sys.executable
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def processes_of(app_root: Path) -> ModuleType:
    """``sapien/processes.py`` of ``app_root``, loaded on its own (it imports only the standard library)."""
    name = f"bench_processes_{abs(hash(app_root))}"
    spec = importlib.util.spec_from_file_location(name, app_root / "sapien" / "processes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def amqp_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or HOST, parts.port or 5672), timeout=2).close()
    except OSError:
        return False
    return True


class Services:
    """Embedded PostgreSQL + Redis in ``data_dir``; optional RabbitMQ vhost; all stopped by ``close()``."""

    def __init__(self, data_dir: Path, amqp_url: str | None) -> None:
        from sapien.embedded import start_postgres, start_redis

        self.data_dir = data_dir
        self.postgres = start_postgres(data_dir=data_dir / "postgres", port=free_port(), database="sapien")
        self.redis = start_redis(data_dir=data_dir / "redis", port=free_port())
        self.amqp_url = None
        self._vhost: str | None = None
        if amqp_url:
            self.amqp_url = self._own_vhost(amqp_url)

    def _own_vhost(self, url: str) -> str:
        """A throwaway vhost, so that other users of the same RabbitMQ cannot take our messages.

        Only for the default local guest URL and when ``rabbitmqctl`` works; otherwise the URL as given.
        """
        if url != DEFAULT_AMQP or not shutil.which("rabbitmqctl"):
            return url
        vhost = f"sapien_bench_{os.getpid()}"
        try:
            for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
                subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            print("  (could not create a RabbitMQ vhost of our own; using '/')", file=sys.stderr)
            return url
        self._vhost = vhost
        return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"

    def pg_url(self, database: str = "sapien") -> str:
        return f"postgresql://postgres@{HOST}:{self.postgres.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.pg_url("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')

    def broker_url(self, kind: str, redis_db: int = 0) -> str:
        if kind == "amqp":
            assert self.amqp_url
            return self.amqp_url
        return f"redis://{HOST}:{self.redis.port}/{redis_db}"

    def watch(self, sampler: MemorySampler) -> None:
        sampler.watch("postgres", self.postgres.pid)
        sampler.watch("redis", self.redis.pid)

    def close(self) -> None:
        for server in (self.redis, self.postgres):
            with contextlib.suppress(Exception):
                server.stop(timeout=20)
        if self._vhost:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self._vhost], capture_output=True, timeout=60)


class SapienStack:
    """Sapien's four processes against one database and one broker."""

    def __init__(
        self, services: Services, broker: str, work_dir: Path, sampler: MemorySampler, app_root: Path = ROOT
    ) -> None:
        self.services = services
        self.app_root = app_root  # where manage.py and the packages are: this checkout or an exported revision
        self.broker = broker
        self.work_dir = work_dir
        self.log_dir = work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.sampler = sampler
        self.web_port = free_port()
        self.procs: dict[str, Proc] = {}
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": services.pg_url("sapien"),
                "ESL_BROKER_URL": services.broker_url(broker),
                "ESL_ALLOW_PRIVATE_CALLBACKS": "true",
                "ESL_PUBLIC_URL": f"http://{HOST}:{self.web_port}",
                "ESL_BLOB_ROOT": str(work_dir / "blobs"),
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                "BENCH_APP_ROOT": str(app_root),
            }
        )
        self.env.pop("DJANGO_SETTINGS_MODULE", None)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    def migrate(self) -> None:
        command = [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"]
        subprocess.run(command, cwd=self.app_root, env=self.env, check=True, timeout=600)

    def side(self, *args: str, timeout: float = 600) -> dict[str, object]:
        done = subprocess.run(
            [PYTHON, str(ROOT / "bench" / "sapien_side.py"), *args], cwd=self.app_root, env=self.env, check=False,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"sapien_side {args[0]} failed:\n{done.stderr[-3000:]}")
        result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def _commands(self) -> dict[str, list[str]]:
        """``sapien.processes``' command lines, as ``make run`` and the Docker image run them, without an access log;
        the benchmarked revision's own (``--ref``), whose processes may start otherwise than this checkout's. A
        revision from before ``sapien/processes.py`` (8afac02) gets the command lines the bench gave it then."""
        if not (self.app_root / "sapien" / "processes.py").exists():
            return self._commands_before_processes_module()
        processes = processes_of(self.app_root)
        return {
            "web": processes.web(host=HOST, port=self.web_port, workers=2, access_log=False, log_level="warning"),
            "relay": processes.relay(),
            "worker": processes.worker(concurrency=2, name=f"bench-{uuid.uuid4().hex[:6]}@%h", log_level="WARNING"),
            "beat": processes.beat(schedule=self.work_dir / "celerybeat-schedule", log_level="WARNING"),
        }

    def _commands_before_processes_module(self) -> dict[str, list[str]]:
        return {
            "web": [PYTHON, "-m", "gunicorn", "sapien.wsgi", "--bind", f"{HOST}:{self.web_port}", "--workers", "2",
                    "--graceful-timeout", "5", "--log-level", "warning"],
            "relay": [PYTHON, "manage.py", "run_relay"],
            "worker": [PYTHON, "-m", "celery", "-A", "sapien", "worker", "--loglevel", "WARNING",
                       "--concurrency", "2", "-Q", "sapien", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"],
            "beat": [PYTHON, "-m", "celery", "-A", "sapien", "beat", "--loglevel", "WARNING",
                     "--schedule", str(self.work_dir / "celerybeat-schedule")],
        }  # fmt: skip

    def start(self, *names: str, **env_overrides: str) -> None:
        commands = self._commands()
        for name in names or ("web", "relay", "worker", "beat"):
            env = self.env | env_overrides
            label = f"sapien-{self.broker}-{name}"
            proc = Proc(label, commands[name], env, self.log_dir, cwd=self.app_root)
            self.procs[name] = proc
            self.sampler.watch(f"sapien-{self.broker}.{name}", proc.pid)
            if name == "web":
                wait_port(self.web_port, 60, proc)
                self._wait_healthy(proc)

    def _wait_healthy(self, proc: Proc) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"gunicorn exited:\n{proc.tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base_url}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("Sapien did not become healthy in 60 s")

    def stop(self, *names: str) -> None:
        for name in names or tuple(reversed(list(self.procs))):
            proc = self.procs.pop(name, None)
            if proc is not None:
                self.sampler.unwatch(f"sapien-{self.broker}.{name}")
                proc.stop()

    def check_alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if not proc.alive()]

    def token(self, client_id: str, client_secret: str) -> str:
        response = requests.post(
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url
