"""Fixtures for the whole pipeline as real processes: relay, Celery worker(s) and beat, a broker, a receiver.

Registered for the whole suite in ``tests/conftest.py``.
"""

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import processes
from tests.support.receiver import Receiver

BROKERS = ["redis"] + (["amqp"] if os.environ.get("ESL_TEST_AMQP_URL") else [])


def broker_url_for(kind: str) -> str:
    if kind == "amqp":
        return os.environ["ESL_TEST_AMQP_URL"]
    return os.environ.get("ESL_BROKER_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Platform:
    broker_url: str
    log_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    running: list[processes.Process] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return processes.service_env(self.broker_url, **self.overrides)

    def start(self, process: processes.Process) -> processes.Process:
        self.running.append(process.start())
        return process

    def worker(self, name: str = "worker1") -> processes.Process:
        return self.start(processes.worker(name, self.env, self.log_dir))

    def relay(self, name: str = "relay1") -> processes.Process:
        return self.start(processes.relay(name, self.env, self.log_dir))

    def beat(self) -> processes.Process:
        return self.start(processes.beat(self.env, self.log_dir))

    def start_all(self) -> "Platform":
        self.relay()
        self.worker()
        self.beat()
        return self

    def supervise(self) -> list[str]:
        """Restarts processes that exit, as a process manager would in production; returns what it restarted."""
        restarted: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.5):
                for process in self.running:
                    if process.popen is not None and process.popen.poll() is not None:
                        restarted.append(process.name)
                        process.start()

        self._supervisor_stop = stop
        threading.Thread(target=watch, daemon=True).start()
        return restarted

    def stop_all(self) -> None:
        if hasattr(self, "_supervisor_stop"):
            self._supervisor_stop.set()
        for process in reversed(self.running):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.log()[-6000:]}" for p in self.running)


@pytest.fixture
def e2e_settings(settings):
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = True
    return settings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def platform_factory(transactional_db, e2e_settings, tmp_path) -> Iterator[Any]:
    created: list[Platform] = []

    def make(broker: str = "redis", **overrides: Any) -> Platform:
        platform = Platform(broker_url=broker_url_for(broker) if "://" not in broker else broker, log_dir=tmp_path,
                            overrides=overrides)  # fmt: skip
        created.append(platform)
        return platform

    yield make
    for platform in created:
        platform.stop_all()
        print(platform.logs())


@pytest.fixture(params=BROKERS)
def platform(request, platform_factory) -> Platform:
    """Relay, one worker and beat on the embedded Redis, and on RabbitMQ when ESL_TEST_AMQP_URL names one."""
    return platform_factory(request.param).start_all()
