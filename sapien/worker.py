"""``python -m sapien.worker``: Sapien's Celery worker, ``--concurrency`` processes that each take their tasks from
the broker and run them themselves.

Celery's prefork pool has one process receive every message, hand each task to a child over a pipe and take its
result back: in (a) of the bench that hand-over was a third of the worker's CPU per delivery (docs/benchmarks.md,
"Worker processes that run their own tasks"). Here each process is a Celery worker with the ``solo`` pool,
consuming from the broker itself. This process loads Celery and the settings, forks them (they share those pages),
restarts one that exits on ``sapien.supervisor``'s backoff, and passes SIGTERM, SIGINT and SIGQUIT on (Celery's warm
and cold shutdowns); one that loses this process gets SIGTERM. A process that dies mid-task loses nothing: the
deliveries it held are taken again once their lease ends, as when a prefork child died.

It starts the ``WorkController`` without Celery's command line, which imports every subcommand before it runs one
(the amqp shell's click-repl and prompt_toolkit, pygments: about 8 MB a process), with the options Sapien always
wants: no gossip, mingle or event heartbeats (see ``sapien.processes``).
"""

import argparse
import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from sapien.supervisor import Backoff, describe_exit, next_delay, set_parent_death_signal

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class WorkerProcesses:
    """Forks ``count`` processes that each return ``run(index)``'s exit code (index 1 to ``count``), and keeps them
    running until one of ``PASSED_ON`` reaches this process, which then passes it on and waits for them all."""

    def __init__(
        self, count: int, run: Callable[[int], int], *, policy: Backoff | None = None, report: TextIO = sys.stderr
    ) -> None:
        self.count, self.run, self.policy, self.report = count, run, policy or Backoff(), report
        self.index_of: dict[int, int] = {}  # the running processes: pid -> index
        self.started_at: dict[int, float] = {}
        self.delay: dict[int, float] = {}  # by index: the delay before its latest restart
        self.stopping = False

    def supervise(self) -> int:
        previous = {sig: signal.signal(sig, self._pass_on) for sig in PASSED_ON}
        try:
            for index in range(1, self.count + 1):
                self._fork(index)
            while self.index_of:
                pid, status = os.wait()
                index = self.index_of.pop(pid)
                if not self.stopping:
                    self._restart(index, os.waitstatus_to_exitcode(status))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _pass_on(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for pid in self.index_of:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _fork(self, index: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, PASSED_ON)  # no signal between the fork and index_of
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._be_child(index, parent)
        self.index_of[pid] = index
        self.started_at[index] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PASSED_ON)

    def _be_child(self, index: int, parent: int) -> None:
        code = 1
        try:
            for sig in PASSED_ON:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, PASSED_ON)
            with contextlib.suppress(OSError):  # not Linux
                set_parent_death_signal(signal.SIGTERM)
            if os.getppid() != parent:  # the parent died before this process asked
                return
            code = self.run(index)
        except BaseException:  # noqa: BLE001 - reported, then the exit code says it failed
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _restart(self, index: int, exit_code: int) -> None:
        uptime = time.monotonic() - self.started_at[index]
        delay = self.delay[index] = next_delay(self.policy, previous=self.delay.get(index), uptime=uptime)
        print(f"Worker process {index} {describe_exit(exit_code)} after {uptime:.1f} s; restarting it in {delay:g} s.",
              file=self.report, flush=True)  # fmt: skip
        deadline = time.monotonic() + delay
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))
        if not self.stopping:
            self._fork(index)


def node_name(hostname: str | None, index: int | None) -> str:
    """Celery's node name (``name@%h``, by default ``celery@`` the host name); the ``index``-th process of several
    gets its own, ``name-index@host``."""
    from celery.utils.nodenames import default_nodename, host_format

    name = host_format(default_nodename(hostname))
    if index is None:
        return name
    local, _, host = name.partition("@")
    return f"{local}-{index}@{host}"


def build_worker(*, hostname: str, queues: list[str], loglevel: str) -> Any:
    """One Celery worker for this process, running each task as it takes it (the ``solo`` pool) and acknowledging
    each message as soon as Celery asks (``sapien.worker_consumer``): as its task starts, or once it is done with
    ``CELERY_TASK_ACKS_LATE`` (RabbitMQ: see the settings)."""
    from celery.utils.log import mlevel

    from sapien.celery import app
    from sapien.worker_consumer import AcknowledgingConsumer

    return app.Worker(
        hostname=hostname,
        queues=queues,
        pool_cls="solo",
        consumer_cls=AcknowledgingConsumer,
        concurrency=1,
        loglevel=mlevel(loglevel.upper()),
        optimization="default",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )


def run_worker(*, hostname: str, queues: list[str], loglevel: str) -> int:
    worker = build_worker(hostname=hostname, queues=queues, loglevel=loglevel)
    worker.start()
    return int(worker.exitcode or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapien.worker", description="Run a Celery worker of Sapien.")
    parser.add_argument("-Q", "--queues", default="sapien", help="comma-separated queues (default sapien)")
    parser.add_argument("-c", "--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("-n", "--hostname", help="node name, e.g. worker1@%%h (default celery@ the host name)")
    parser.add_argument("-l", "--loglevel", default="INFO", help="log level (default INFO)")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")

    from sapien.core.tracing import keep_opentelemetry_out_unless_configured

    keep_opentelemetry_out_unless_configured()  # before Celery imports kombu and redis
    from celery.platforms import maybe_drop_privileges

    import sapien.celery  # noqa: F401 - loaded once, before the fork: its pages are shared

    maybe_drop_privileges()  # as ``celery worker`` does: refuses to run set-uid as root
    queues = args.queues.split(",")
    if args.concurrency == 1:
        return run_worker(hostname=node_name(args.hostname, None), queues=queues, loglevel=args.loglevel)

    def run(index: int) -> int:
        return run_worker(hostname=node_name(args.hostname, index), queues=queues, loglevel=args.loglevel)

    return WorkerProcesses(args.concurrency, run).supervise()


if __name__ == "__main__":
    sys.exit(main())
