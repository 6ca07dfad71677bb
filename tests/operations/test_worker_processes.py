"""The worker role's processes (``sapien.worker``): each runs its own tasks; their parent keeps them running and
passes its stop signals on.

The parent is a real process (a ``python -c`` script) forking real children, signalled and killed for real; what
each child runs is a stand-in for a Celery worker that records its start and its stop in files.
"""

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sapien.worker import main, node_name
from tests.support.processes import ROOT, wait_until

# Each child touches started-INDEX-PID, waits for SIGTERM, touches stopped-INDEX-PID and exits 0. With CRASH_ONCE
# set, child 2's first start exits with code 3 instead.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from sapien.supervisor import Backoff
    from sapien.worker import WorkerProcesses

    out = Path(sys.argv[1])

    def run(index):
        stopped = []
        signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
        crashed_before = (out / "crashed").exists()
        (out / f"started-{index}-{os.getpid()}").touch()
        if index == 2 and os.environ.get("CRASH_ONCE") and not crashed_before:
            (out / "crashed").touch()
            return 3
        while not stopped:
            time.sleep(0.01)
        (out / f"stopped-{index}-{os.getpid()}").touch()
        return 0

    policy = Backoff(initial=0.05, factor=2.0, maximum=0.4, stable_after=30.0)
    sys.exit(WorkerProcesses(2, run, policy=policy).supervise())
    """
)


@contextmanager
def worker_processes(out: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env={**os.environ, **env}, text=True,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        yield parent
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()


def marks(out: Path, kind: str) -> list[tuple[int, int]]:
    """(index, pid) of every child that touched ``kind``-INDEX-PID, in index order."""
    found = [path.name.split("-")[1:] for path in out.glob(f"{kind}-*")]
    return sorted((int(index), int(pid)) for index, pid in found)


def test_each_process_runs_its_own_index_and_a_stop_signal_reaches_them_all(tmp_path: Path) -> None:
    with worker_processes(tmp_path) as parent:
        wait_until(lambda: len(marks(tmp_path, "started")) == 2, timeout=30, message="both children started")
        started = marks(tmp_path, "started")
        assert [index for index, _ in started] == [1, 2]
        assert parent.pid not in [pid for _, pid in started]

        parent.send_signal(signal.SIGTERM)

        assert parent.wait(timeout=30) == 0
        assert marks(tmp_path, "stopped") == started  # each stopped on its own terms, then the parent exited


def test_a_process_that_exits_is_restarted_and_the_other_left_alone(tmp_path: Path) -> None:
    with worker_processes(tmp_path, CRASH_ONCE="1") as parent:
        wait_until(lambda: len(marks(tmp_path, "started")) == 3, timeout=30, message="child 2 started again")
        started = marks(tmp_path, "started")
        assert [index for index, _ in started] == [1, 2, 2]  # child 1 once, child 2 twice

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        _, stderr = parent.communicate()

    assert "Worker process 2 exited with code 3 after" in stderr
    assert "restarting it in 0.05 s." in stderr
    assert len(marks(tmp_path, "stopped")) == 2  # child 1 and child 2's second start


def test_the_processes_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    with worker_processes(tmp_path) as parent:
        wait_until(lambda: len(marks(tmp_path, "started")) == 2, timeout=30, message="both children started")

        os.kill(parent.pid, signal.SIGKILL)  # the parent alone, not its process group

        wait_until(lambda: len(marks(tmp_path, "stopped")) == 2, timeout=30, message="both children stopped")
        assert marks(tmp_path, "stopped") == marks(tmp_path, "started")


def test_each_of_several_processes_has_a_node_name_of_its_own() -> None:
    hostname = node_name("celery@%h", None).split("@", 1)[1]

    assert node_name("worker1@%h", None) == f"worker1@{hostname}"
    assert node_name("worker1@%h", 2) == f"worker1-2@{hostname}"
    assert node_name(None, 1) == f"celery-1@{hostname}"


def test_fewer_than_one_process_is_refused() -> None:
    with pytest.raises(SystemExit) as refused:
        main(["--concurrency", "0"])

    assert refused.value.code == 2


def test_each_process_is_a_solo_worker_that_acknowledges_at_once() -> None:
    """The pool that runs the task in the process that took it, with the consumer that does not leave the
    acknowledgement to the event loop's next turn (``sapien.worker_consumer``). Built in a process of its own: a
    Celery worker installs Django's worker fix-up in the process that builds it."""
    script = (
        "from sapien.worker import build_worker\n"
        "worker = build_worker(hostname='spec@localhost', queues=['sapien'], loglevel='WARNING')\n"
        "print(worker.pool_cls.__module__, worker.consumer_cls.__module__, worker.consumer_cls.__name__, "
        "worker.concurrency)\n"
    )
    built = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert built.returncode == 0, built.stderr
    assert built.stdout.split() == ["celery.concurrency.solo", "sapien.worker_consumer", "AcknowledgingConsumer", "1"]
