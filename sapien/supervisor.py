"""Keeps ``make run``'s processes up: each one restarted on its own backoff, the healthy ones left alone.

A process that exits is restarted after ``next_delay()``: 0.5 s, doubling with each exit in a
row up to 30 s, and back to 0.5 s once it had stayed up 30 s. A process that keeps crashing is
reported on stderr at every exit (its name, exit code or signal, the next delay) and retried
ever more slowly, never given up on; no other process is stopped or restarted because of it.
Stopping (Ctrl-C, SIGTERM) sends SIGTERM to every process, waits for each in start order, and
kills what does not stop in time.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def set_parent_death_signal(signum: int) -> None:
    """Asks the kernel to send this process ``signum`` when its parent dies (Linux; elsewhere an ``OSError``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_int(signum)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (AttributeError, TypeError) as exc:  # no prctl in this libc
        raise OSError("pdeathsig is not supported here") from exc


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    stable_after: float = 30.0  # seconds up after which an exit counts as the first in a row


def next_delay(policy: Backoff, *, previous: float | None, uptime: float) -> float:
    """How long to wait before restarting a process that exited after ``uptime`` seconds.

    ``previous`` is the delay before its last start (None for the first exit). The delay is
    ``policy.initial`` after a first exit or a stable run (``uptime >= policy.stable_after``),
    else ``min(previous * policy.factor, policy.maximum)``.
    """
    if previous is None or uptime >= policy.stable_after:
        return policy.initial
    return min(previous * policy.factor, policy.maximum)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Child:
    """One supervised command in its own process group (so Ctrl-C reaches only the supervisor)."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name, self.command = name, command
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.delay: float | None = None  # the delay before the current start, None before any exit
        self.exits_in_a_row = 0
        self.restart_at: float | None = None  # set while it waits for its restart
        self.starts = 0


class Supervisor:
    """Starts ``commands`` and keeps them running until ``stop()``.

    ``start()`` starts every process; ``poll()`` is one pass of the loop and does not sleep;
    ``run()`` repeats it until an event is set, and ``stop()`` must follow it (not run alongside).
    ``run_until_signalled()`` is all of these for the launcher, ended by SIGINT or SIGTERM.
    """

    POLL_SECONDS = 0.1

    def __init__(
        self,
        commands: Mapping[str, list[str]],
        *,
        cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        policy: Backoff = Backoff(),
        report: TextIO = sys.stderr,
    ) -> None:
        self.children = {name: Child(name, list(command)) for name, command in commands.items()}
        self.cwd, self.env, self.policy, self.report = cwd, dict(env) if env is not None else None, policy, report
        self.delays: dict[str, list[float]] = {name: [] for name in commands}  # every restart delay decided
        self._stopping = False

    def start(self) -> None:
        for child in self.children.values():
            self._start(child)

    def _start(self, child: Child) -> None:
        child.popen = subprocess.Popen(child.command, cwd=self.cwd, env=self.env, start_new_session=True)  # noqa: S603
        child.started_at = time.monotonic()
        child.restart_at = None
        child.starts += 1

    def pid(self, name: str) -> int | None:
        popen = self.children[name].popen
        return popen.pid if popen is not None and popen.poll() is None else None

    def poll(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if self._stopping:
                return
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            if child.popen is None or child.popen.poll() is None:
                continue
            self._exited(child, now)

    def _exited(self, child: Child, now: float) -> None:
        assert child.popen is not None
        returncode, uptime = child.popen.returncode, now - child.started_at
        _kill_group(child.popen.pid)  # what the process forked (gunicorn or Celery pool workers) goes with it
        child.exits_in_a_row = 1 if uptime >= self.policy.stable_after else child.exits_in_a_row + 1
        child.delay = next_delay(self.policy, previous=child.delay, uptime=uptime)
        child.restart_at = now + child.delay
        self.delays[child.name].append(child.delay)
        line = f"The {child.name} process {describe_exit(returncode)} after {uptime:.1f} s"
        line += f"; restarting it in {child.delay:g} s"
        if child.exits_in_a_row > 1:
            line += f" ({child.exits_in_a_row} exits in a row: it keeps crashing, see its output above)"
        print(f"{line}.", file=self.report, flush=True)

    def run(self, until: threading.Event) -> None:
        while not until.wait(self.POLL_SECONDS):
            self.poll()

    def run_until_signalled(self, *, started: Callable[[], None] | None = None) -> None:
        """Starts everything, calls ``started``, runs until SIGINT or SIGTERM, then stops everything.

        The handlers are in place before the first process starts, so no signal can leave one
        behind. Main thread only.
        """
        stop = threading.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in signals}
        try:
            self.start()
            if started is not None:
                started()
            self.run(stop)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to every running process, then waits for each in start order; SIGKILL after ``timeout``.

        Once stopped, it stays stopped: a second call does nothing.
        """
        if self._stopping:
            return
        self._stopping = True
        running = [child.popen for child in self.children.values() if child.popen is not None]
        for popen in running:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for popen in running:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
            _kill_group(popen.pid)


def _kill_group(pgid: int) -> None:
    """SIGKILL to what is left of a process group whose leader has exited."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
