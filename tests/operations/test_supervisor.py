"""``make run``'s supervision: each process restarted on its own backoff, the healthy ones never touched.

The processes are real children (``python -c`` scripts), killed and crashing for real.
"""

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest

from sapien.supervisor import Backoff, Supervisor, describe_exit, next_delay
from tests.support.processes import ROOT, wait_until

PY = sys.executable
STAYS_UP = [PY, "-c", "import time; time.sleep(600)"]
EXITS_AT_ONCE = [PY, "-c", "import sys; sys.exit(3)"]
FAST = Backoff(initial=0.05, factor=2.0, maximum=0.4, stable_after=30.0)


@contextmanager
def supervising(supervisor: Supervisor) -> Iterator[Supervisor]:
    """The supervisor's loop in a thread, as ``run_until_signalled`` runs it in the launcher; stopped after."""
    stop = threading.Event()
    supervisor.start()
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield supervisor
    finally:
        stop.set()
        thread.join(timeout=10)
        supervisor.stop(timeout=5)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to collect it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def signal_mask(pid: int, field: str) -> int:
    """``SigIgn`` (ignored) or ``SigCgt`` (caught) of ``/proc/<pid>/status``, as a bit mask."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} for {pid}")


def has_handler(pid: int | None, signum: int, field: str = "SigCgt") -> bool:
    return pid is not None and bool(signal_mask(pid, field) & (1 << (signum - 1)))


@pytest.mark.parametrize(
    ("previous", "uptime", "delay"),
    [
        (None, 0.1, 0.5),  # the first exit
        (0.5, 0.1, 1.0),  # doubling with each exit in a row
        (1.0, 2.0, 2.0),
        (8.0, 29.9, 16.0),
        (16.0, 1.0, 30.0),  # capped
        (30.0, 1.0, 30.0),  # and never given up on
        (30.0, 30.0, 0.5),  # up for 30 s: a fresh start
        (None, 500.0, 0.5),
    ],
)
def test_next_delay(previous: float | None, uptime: float, delay: float) -> None:
    assert next_delay(Backoff(), previous=previous, uptime=uptime) == delay


@pytest.mark.parametrize(
    ("returncode", "described"),
    [
        (3, "exited with code 3"),
        (0, "exited with code 0"),
        (-9, "was killed by SIGKILL"),
        (-15, "was killed by SIGTERM"),
    ],
)
def test_describe_exit(returncode: int, described: str) -> None:
    assert describe_exit(returncode) == described


def test_a_crash_loop_is_retried_ever_more_slowly_and_leaves_the_healthy_process_alone() -> None:
    # given a process that exits at once, every time, next to one that stays up
    report = StringIO()
    supervisor = Supervisor({"healthy": STAYS_UP, "crashing": EXITS_AT_ONCE}, cwd=ROOT, policy=FAST, report=report)
    with supervising(supervisor):
        healthy_pid = supervisor.pid("healthy")
        assert healthy_pid is not None

        # when it has crashed seven times
        wait_until(lambda: len(supervisor.delays["crashing"]) >= 7, timeout=60, message="seven crashes")

        # then the healthy one was never restarted and is still the same process
        assert supervisor.pid("healthy") == healthy_pid
        assert supervisor.children["healthy"].starts == 1
        assert supervisor.delays["healthy"] == []
    # and the crashing one was restarted after growing delays, up to the cap, and still is
    assert supervisor.delays["crashing"][:7] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
    assert supervisor.children["crashing"].starts >= 7
    # and each exit was reported with its name, exit code and next delay
    lines = report.getvalue().splitlines()
    assert lines[0].startswith("The crashing process exited with code 3 after ")
    assert lines[0].endswith(" s; restarting it in 0.05 s.")
    assert lines[1].endswith(" s; restarting it in 0.1 s (2 exits in a row: it keeps crashing, see its output above).")
    assert lines[6].endswith(" s; restarting it in 0.4 s (7 exits in a row: it keeps crashing, see its output above).")
    assert all(line.startswith("The crashing process ") for line in lines)
    # and stopping stopped the healthy one with SIGTERM
    assert supervisor.children["healthy"].popen is not None
    assert supervisor.children["healthy"].popen.returncode == -signal.SIGTERM


def test_a_killed_process_comes_back_and_the_others_stay(tmp_path: Path) -> None:
    # given two processes that stay up, the first with a child of its own (as gunicorn and Celery have)
    grandchild_file = tmp_path / "grandchild.pid"
    with_child = [
        PY, "-c",
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(grandchild_file)!r}).write_text(str(child.pid))\n"
        "time.sleep(600)",
    ]  # fmt: skip
    report = StringIO()
    supervisor = Supervisor({"worker": with_child, "web": STAYS_UP}, cwd=ROOT, policy=FAST, report=report)
    with supervising(supervisor):
        worker_pid, web_pid = supervisor.pid("worker"), supervisor.pid("web")
        assert worker_pid is not None and web_pid is not None
        wait_until(grandchild_file.exists, message="the worker's child")
        grandchild_pid = int(grandchild_file.read_text())

        # when the worker is killed with SIGKILL
        os.kill(worker_pid, signal.SIGKILL)

        # then it is started again, and what it had forked does not linger
        wait_until(lambda: supervisor.pid("worker") not in (None, worker_pid), message="the worker back")
        wait_until(lambda: not alive(grandchild_pid), message="the orphaned child gone")
        # and the web process was left alone
        assert supervisor.pid("web") == web_pid
        assert supervisor.children["worker"].starts == 2
        assert supervisor.children["web"].starts == 1
    assert supervisor.delays == {"worker": [0.05], "web": []}
    [line] = report.getvalue().splitlines()
    assert line.startswith("The worker process was killed by SIGKILL after ")
    assert line.endswith(" s; restarting it in 0.05 s.")


def test_stop_kills_what_does_not_stop_in_time() -> None:
    # given a process that ignores SIGTERM
    ignores_sigterm = [PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
    supervisor = Supervisor({"stubborn": ignores_sigterm, "polite": STAYS_UP}, cwd=ROOT, policy=FAST)
    supervisor.start()
    wait_until(lambda: has_handler(supervisor.pid("stubborn"), signal.SIGTERM, "SigIgn"), message="SIGTERM ignored")

    # when it is stopped with a short timeout
    supervisor.stop(timeout=0.5)

    # then the polite one stopped on SIGTERM and the stubborn one was killed
    polite, stubborn = supervisor.children["polite"].popen, supervisor.children["stubborn"].popen
    assert polite is not None and stubborn is not None
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


CHILD_SCRIPT = """
import pathlib, signal, sys, time

name, marker = sys.argv[1], pathlib.Path(sys.argv[2])


def stop(*_):
    with marker.open("a") as out:
        out.write(f"{name} stopped\\n")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
time.sleep(600)
"""

SUPERVISOR_SCRIPT = """
import sys
from sapien.supervisor import Supervisor

child, marker = sys.argv[1], sys.argv[2]
supervisor = Supervisor({name: [sys.executable, child, name, marker] for name in ("web", "worker")})
supervisor.run_until_signalled(started=lambda: print(supervisor.pid("web"), supervisor.pid("worker"), flush=True))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_process(tmp_path: Path, signum: int) -> None:
    # given a supervisor running in a process of its own, as the launcher runs it
    child, marker = tmp_path / "child.py", tmp_path / "stopped"
    child.write_text(CHILD_SCRIPT)
    process = subprocess.Popen(
        [PY, "-c", SUPERVISOR_SCRIPT, str(child), str(marker)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        web_pid, worker_pid = (int(pid) for pid in process.stdout.readline().split())
        wait_until(lambda: has_handler(web_pid, signal.SIGTERM) and has_handler(worker_pid, signal.SIGTERM),
                   message="both children ready")  # fmt: skip

        # when it receives Ctrl-C (SIGINT) or SIGTERM
        process.send_signal(signum)

        # then it stops both children with SIGTERM, waits for them, and exits
        assert process.wait(timeout=30) == 0
        assert process.stdout.read() == "stopped\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert sorted(marker.read_text().splitlines()) == ["web stopped", "worker stopped"]
    assert not alive(web_pid)
    assert not alive(worker_pid)
