"""A task message goes to a worker process that is free, never to wait behind a task that holds another.

Real worker processes (``sapien.worker``'s ``WorkerProcesses``, each a ``solo`` Celery worker with Sapien's consumer
and settings) on the real broker, with one task of the spec's own that holds its process. RabbitMQ pushes a message
to any process with room in its prefetch window; acknowledged as its task starts, a busy process would have room
again and be sent the next message, which would wait there while the other process is idle. Acknowledged once its
task is done (``CELERY_TASK_ACKS_LATE`` with any broker but Redis), it goes to the free process. With Redis a
process asks for a message only when its loop is free.
"""

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery

from tests.support.platform import BROKERS, broker_url_for
from tests.support.processes import ROOT, service_env, wait_until

# Two worker processes consuming QUEUE. ``spec.hold`` marks its start (began-LABEL), holds its process for SECONDS and
# marks its end (ended-LABEL); each process marks ready-PID once it consumes. A mark holds the process's pid and
# appears whole (written aside, then renamed).
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    from celery.signals import worker_ready

    from sapien.celery import app
    from sapien.worker import WorkerProcesses, node_name, run_worker

    out, queue = Path(sys.argv[1]), sys.argv[2]

    def mark(name):
        (out / f".{name}").write_text(str(os.getpid()))
        os.replace(out / f".{name}", out / name)

    @app.task(name="spec.hold")
    def hold(label, seconds):
        mark(f"began-{label}")
        time.sleep(seconds)
        mark(f"ended-{label}")

    @worker_ready.connect
    def ready(**_):
        mark(f"ready-{os.getpid()}")

    def run(index):
        return run_worker(hostname=node_name(f"placement-{queue}", index), queues=[queue], loglevel="WARNING")

    sys.exit(WorkerProcesses(2, run).supervise())
    """
)


@contextmanager
def two_worker_processes(broker_url: str, out: Path, queue: str) -> Iterator[None]:
    """Killed when done, the task still held included, and their queue deleted."""
    workers = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), queue], cwd=ROOT, env=service_env(broker_url),
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: len(list(out.glob("ready-*"))) == 2 or workers.poll() is not None, timeout=60)
        assert workers.poll() is None, workers.communicate()[1]
        yield
    finally:
        os.killpg(workers.pid, signal.SIGKILL)
        workers.communicate()
        with Celery(broker=broker_url).connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)


def pid_of(out: Path, mark: str) -> int:
    return int((out / mark).read_text())


@pytest.mark.parametrize("broker", BROKERS)
def test_a_task_sent_while_one_process_is_held_runs_at_once_on_the_other(broker: str, tmp_path: Path) -> None:
    broker_url, queue = broker_url_for(broker), f"placement-{uuid.uuid4().hex}"
    publisher = Celery(broker=broker_url)
    try:
        with two_worker_processes(broker_url, tmp_path, queue):
            publisher.send_task("spec.hold", args=["held", 20], queue=queue)
            wait_until(lambda: (tmp_path / "began-held").exists(), message="the holding task to start")
            held_by = pid_of(tmp_path, "began-held")
            for label in ("first", "second"):  # one for each process's turn, whatever order the broker keeps
                publisher.send_task("spec.hold", args=[label, 0], queue=queue)
            wait_until(lambda: (tmp_path / "ended-second").exists(), timeout=15, message="the second quick task")

            assert pid_of(tmp_path, "ended-first") != held_by
            assert pid_of(tmp_path, "ended-second") != held_by
            assert not (tmp_path / "ended-held").exists()
    finally:
        publisher.close()
