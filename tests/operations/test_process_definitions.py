"""Each process's command line is written once, in ``sapien.processes``; the Docker files only name its roles."""

import gc
import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import pytest
import yaml
from django.db import connection

from sapien import processes
from tests.support.processes import ROOT, python_json, service_env

ROLES = {
    "web": processes.web(),
    "relay": processes.relay(),
    "worker": processes.worker(),
    "beat": processes.beat(schedule="/tmp/celerybeat-schedule"),
}


@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        (["web"], ROLES["web"]),
        (["web", "--port", "9000", "--host", "127.0.0.1", "--workers", "3"],
         processes.web(port=9000, host="127.0.0.1", workers=3)),
        (["web", "--threads", "4"], processes.web(threads=4)),
        (["relay"], ROLES["relay"]),
        (["worker", "--concurrency", "4", "--name", "w1@%h"], processes.worker(concurrency=4, name="w1@%h")),
        (["beat", "--schedule", "/tmp/celerybeat-schedule"], ROLES["beat"]),
    ],
)  # fmt: skip
def test_python_m_sapien_processes_runs_the_same_command_lines(arguments: list[str], command: list[str]) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "sapien.processes", "--print", *arguments], cwd=ROOT, capture_output=True, text=True,
        check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert shlex.split(printed.stdout) == command


def test_the_defaults_come_from_the_environment_as_in_the_containers() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PORT": "8081", "WEB_CONCURRENCY": "5",
           "WORKER_CONCURRENCY": "7"}  # fmt: skip

    def printed(role: str) -> list[str]:
        command = [sys.executable, "-m", "sapien.processes", "--print", role]
        return shlex.split(
            subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout
        )

    assert printed("web") == processes.web(port=8081, workers=5)
    assert printed("worker") == processes.worker(concurrency=7)


def test_the_web_process_runs_gunicorn_with_the_shared_configuration() -> None:
    assert processes.web(host="127.0.0.1", port=8000, workers=1, access_log=False, log_level="warning")[1:] == [
        "-m", "gunicorn", "sapien.wsgi", "--config", "python:sapien.gunicorn_conf", "--bind", "127.0.0.1:8000",
        "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip
    assert processes.web()[-2:] == ["--access-logfile", "-"]
    threaded = processes.web(threads=4, access_log=False)
    assert threaded[-4:] == ["--worker-class", "gthread", "--threads", "4"]


@pytest.fixture
def gunicorn_conf() -> Iterator[ModuleType]:
    """``sapien.gunicorn_conf``, whose import makes OpenTelemetry unimportable in the importing process (as in
    gunicorn's master, with tracing off): undone after the test, so that a test collected later can import it."""
    unimportable_before = "opentelemetry" in sys.modules and sys.modules["opentelemetry"] is None
    from sapien import gunicorn_conf as module

    yield module
    if not unimportable_before and "opentelemetry" in sys.modules and sys.modules["opentelemetry"] is None:
        del sys.modules["opentelemetry"]


@pytest.mark.django_db(transaction=True)
def test_the_web_master_forks_its_loaded_application_without_a_connection_and_frozen(
    gunicorn_conf: ModuleType,
) -> None:
    assert gunicorn_conf.preload_app is True
    connection.ensure_connection()

    try:
        gunicorn_conf.when_ready(SimpleNamespace(cfg=SimpleNamespace(preload_app=True)))

        assert connection.connection is None  # no worker inherits it
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# gunicorn's master as it loads the application, then readies itself to fork the workers.
MASTER_READY = """
import json, sys
from types import SimpleNamespace
from sapien.core.tracing import keep_opentelemetry_out_unless_configured
keep_opentelemetry_out_unless_configured()
import sapien.gunicorn_conf, sapien.wsgi
loaded = lambda: ["oauth2_provider.views" in sys.modules, "cryptography.hazmat.bindings._rust" in sys.modules]
before = loaded()
sapien.gunicorn_conf.when_ready(SimpleNamespace(cfg=SimpleNamespace(preload_app=True)))
print(json.dumps([before, loaded()]))
"""


def test_the_web_master_loads_the_token_endpoint_once_for_every_worker(db) -> None:
    # cryptography is deferred in every process (sapien/core/deferred_imports.py); each web worker needs it for the
    # token endpoint: loaded in the master, its pages are shared instead of each worker's own.
    assert python_json(MASTER_READY, "redis://127.0.0.1:9/0") == [[False, False], [True, True]]


def test_compose_and_the_dockerfile_start_each_role_through_sapien_processes() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    commands = {name: compose["services"][name]["command"] for name in ROLES}
    assert commands == {
        "web": ["sh", "-c", "python manage.py migrate --noinput && exec python -m sapien.processes web"],
        "relay": ["python", "-m", "sapien.processes", "relay"],
        "worker": ["python", "-m", "sapien.processes", "worker"],
        "beat": ["python", "-m", "sapien.processes", "beat", "--schedule", "/tmp/celerybeat-schedule"],
    }
    [cmd] = [line for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["python", "-m", "sapien.processes", "web"]


# The web process as gunicorn's master loads it, every view included (the URLconf resolved).
WEB_IMPORTS = """
import json, sys
from sapien.core.tracing import keep_opentelemetry_out_unless_configured
keep_opentelemetry_out_unless_configured()
import sapien.gunicorn_conf, sapien.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"celery", "kombu", "redis", "amqp", "billiard"})))
"""


@pytest.mark.parametrize("broker", ["redis://127.0.0.1:9/0", "amqp://guest:guest@127.0.0.1:9//"])
def test_the_web_process_loads_no_celery_and_no_broker_client(db, broker: str) -> None:
    assert python_json(WEB_IMPORTS, broker) == []


def test_tasks_refuse_to_load_in_a_process_that_has_not_loaded_sapiens_celery_app(db) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); import deliveries.tasks"], cwd=ROOT,
        env=service_env("redis://127.0.0.1:9/0"), capture_output=True, text=True,
    )  # fmt: skip

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "import sapien.celery" in result.stderr
