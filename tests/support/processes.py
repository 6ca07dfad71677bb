"""Real Sapien processes for end-to-end tests: gunicorn, Celery workers, beat and the relay.

Their command lines come from ``sapien.processes``, the same as ``make run``, the Docker image and the bench.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.db import connection

from sapien import processes as sapien_processes

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database the tests run against (pytest-django's test database)."""
    params = connection.settings_dict
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    return f"postgresql://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def service_env(broker_url: str, **overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url(),
            "ESL_BROKER_URL": broker_url,
            "ESL_ALLOW_PRIVATE_CALLBACKS": "true",
            "ESL_RETRY_DELAY_MS": "200",
            "ESL_RELAY_POLL_SECONDS": "0.5",
            "DB_CONN_MAX_AGE": "0",
            "LOG_LEVEL": "WARNING",
            "ESL_ASSERT_TRANSACTIONS": "true",
        }
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


class Process:
    """A child process in its own process group, stopped (or killed) with everything it forked."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.command, self.env = name, command, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> "Process":
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def kill(self) -> None:
        """SIGKILL to the whole group: no clean-up, no acknowledgement, as in a crash."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 10) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def web(env: dict[str, str], log_dir: Path, port: int, workers: int = 1) -> Process:
    """gunicorn on loopback, with the access log, as ``make run`` and the Docker image run it."""
    return Process("web", sapien_processes.web(host="127.0.0.1", port=port, workers=workers), env, log_dir)


def worker(name: str, env: dict[str, str], log_dir: Path, concurrency: int = 2) -> Process:
    return Process(name, sapien_processes.worker(concurrency=concurrency, name=f"{name}@%h"), env, log_dir)


def beat(env: dict[str, str], log_dir: Path) -> Process:
    return Process("beat", sapien_processes.beat(schedule=log_dir / "beat-schedule", log_level="INFO"), env, log_dir)


def relay(name: str, env: dict[str, str], log_dir: Path) -> Process:
    return Process(name, sapien_processes.relay(), env, log_dir)


def python_json(code: str, broker_url: str) -> Any:
    """Runs ``code`` in a new Python process with the services' environment (its imports start from nothing) and
    returns the JSON its last line of output prints."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=service_env(broker_url), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any, timeout: float = 30.0, interval: float = 0.1, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
