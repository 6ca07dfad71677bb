"""Child processes of the benchmark: started in process groups of their own, always stopped.

Every process the bench starts goes through ``Proc``; ``stop_everything()`` (run
from ``finally`` blocks, ``atexit`` and the SIGTERM handler) stops each group with
SIGTERM, then SIGKILL. Memory comes from ``/proc/<pid>/status`` (VmHWM, VmRSS) and
``/proc/<pid>/smaps_rollup`` (PSS).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The receiver's process group: watched, but outside the system measured (CpuUse.system_cpu_ms_per_item).
RECEIVER_GROUP = "receiver"

_running: list[Proc] = []
_lock = threading.Lock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}); log:\n{proc.tail()}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout}s")


class Proc:
    """A command in its own session (so its own process group), logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.pid = self.popen.pid
        with _lock:
            _running.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_pids(self) -> list[int]:
        """The leader first, then every other live process of its group."""
        return group_members(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # the leader may be gone while children of its group linger: kill the whole group
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        with _lock:
            if self in _running:
                _running.remove(self)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def export_revision(ref: str, work: Path) -> Path:
    """``git archive`` of ``ref`` into ``work``/src: read-only for the repository."""
    target = work / "src"
    target.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def stop_everything() -> None:
    with _lock:
        procs = list(reversed(_running))
    for proc in procs:
        proc.stop(timeout=5)


atexit.register(stop_everything)


def group_members(pgid: int) -> list[int]:
    """The leader first, then the rest of its process group and every descendant.

    Descendants count too because some servers move their children into sessions of their
    own (PostgreSQL's backends call ``setsid()``).
    """
    parents: dict[int, int] = {}
    members = {pgid}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # fields: state, ppid, pgrp, ...
        parents[int(entry)] = int(fields[1])
        if int(fields[2]) == pgid:
            members.add(int(entry))
    for _ in range(8):  # bounded depth: enough for master -> worker -> helper
        added = {pid for pid, parent in parents.items() if parent in members and pid not in members}
        if not added:
            break
        members |= added
    return [pgid, *sorted(members - {pgid})]


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in kB; (0, 0) when the process is gone."""
    hwm = rss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return hwm, rss


def pss_kb(pid: int) -> int | None:
    """Proportional set size in kB (``/proc/<pid>/smaps_rollup``): each shared page divided among the processes
    that map it, so a group's PSS adds up to the memory it really holds. ``None`` when unreadable or gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class ProcessCpu:
    """A process's CPU seconds: its own (utime + stime) and its ended children's that it waited for (cutime +
    cstime), with its parent's pid."""

    own: float
    ended_children: float
    parent: int


def process_cpu(pid: int) -> ProcessCpu | None:
    """None when no such process runs on this machine (or it cannot be read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # fields: state, ppid, ..., utime (11), stime, cutime, cstime
    tick = os.sysconf("SC_CLK_TCK")
    return ProcessCpu(
        own=(int(fields[11]) + int(fields[12])) / tick,
        ended_children=(int(fields[13]) + int(fields[14])) / tick,
        parent=int(fields[1]),
    )


def group_cpu_delta(before: dict[int, ProcessCpu], after: dict[int, ProcessCpu]) -> float:
    """The CPU a group's processes spent between two readings, those that ended meanwhile included.

    A process that ended and was waited for by a parent in the group shows again in that parent's ended children's
    time, for its whole life: what it had spent at the first reading is taken off, up to what that time grew by (a
    parent that lets its children be reaped without waiting gains nothing). One whose parent is not in the group is
    lost (its parent is not read), as is the work of a process that began and ended outside the group.
    """
    spent = sum(
        now.own + now.ended_children - (then.own + then.ended_children if (then := before.get(pid)) else 0.0)
        for pid, now in after.items()
    )
    counted_again: dict[int, float] = {}  # parent -> what its ended children had spent at the first reading
    for pid, then in before.items():
        if pid not in after and then.parent in after:
            counted_again[then.parent] = counted_again.get(then.parent, 0.0) + then.own + then.ended_children
    for parent, earlier in counted_again.items():
        grown = after[parent].ended_children - (before[parent].ended_children if parent in before else 0.0)
        spent -= min(earlier, max(grown, 0.0))
    return spent


def cpu_seconds_if_here(pid: int, *, ended_children: bool = False) -> float | None:
    """utime + stime; with ``ended_children``, also that of the children it has waited for (cutime + cstime).
    None when no such process runs on this machine (or it cannot be read)."""
    cpu = process_cpu(pid)
    if cpu is None:
        return None
    return cpu.own + cpu.ended_children if ended_children else cpu.own


def cpu_seconds(pid: int, *, ended_children: bool = False) -> float:
    """``cpu_seconds_if_here``, 0 for a process that is gone."""
    seconds = cpu_seconds_if_here(pid, ended_children=ended_children)
    return 0.0 if seconds is None else seconds


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cmd_label(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    parts = [part.decode(errors="replace") for part in raw if part]
    return " ".join(parts)[:80]


class MemorySampler:
    """Samples VmHWM/VmRSS of named process groups every ``interval`` seconds, in a thread; reads VmRSS and PSS
    once more when a group is unwatched (just before it is stopped) and at ``last_seen()``.

    PSS is read only then: the kernel walks every mapping to compute it, too dear to do every second for every
    process while the CPU of the bench is being counted.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.groups: dict[str, int] = {}  # label -> pgid
        self.peak_kb: dict[tuple[str, int], int] = {}  # (label, pid) -> VmHWM
        self.labels: dict[tuple[str, int], str] = {}
        self.series: list[tuple[float, dict[str, int]]] = []  # (time, {label/pid: rss kB})
        self.last_kb: dict[tuple[str, int], tuple[int, int | None]] = {}  # (label, pid) -> (VmRSS, PSS), last seen
        self.group_pss_kb: dict[str, int] = {}  # label -> PSS of all its processes, the last time it was seen
        self.record_series = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, label: str, pgid: int) -> None:
        self.groups[label] = pgid

    def unwatch(self, label: str) -> None:
        self.sample()
        self.last_seen(label)
        self.groups.pop(label, None)

    def last_seen(self, *labels: str) -> None:
        """Reads VmRSS and PSS of every process of ``labels`` (default: every group watched) now."""
        for label in labels or list(self.groups):
            pgid = self.groups.get(label)
            if pgid is None:
                continue
            total = 0
            for pid in group_members(pgid):
                _, rss = memory_kb(pid)
                if rss:
                    pss = pss_kb(pid)
                    self.last_kb[(label, pid)] = (rss, pss)
                    total += pss or 0
            self.group_pss_kb[label] = total

    def sample(self) -> None:
        point: dict[str, int] = {}
        for label, pgid in list(self.groups.items()):
            for index, pid in enumerate(group_members(pgid)):
                hwm, rss = memory_kb(pid)
                if not hwm:
                    continue
                key = (label, pid)
                self.peak_kb[key] = max(self.peak_kb.get(key, 0), hwm)
                if key not in self.labels:
                    self.labels[key] = "leader" if index == 0 else cmd_label(pid)
                point[f"{label}/{pid}"] = rss
        if self.record_series:
            self.series.append((time.time(), point))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                with contextlib.suppress(Exception):
                    self.sample()

        self._thread = threading.Thread(target=loop, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def system_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuUse:
    """CPU used during a phase; the figures per item are ``None`` when the phase counted no work items.

    ``bench_cpu_ms_per_item`` is everything the bench started or ran: the system measured, the receiver, and the
    bench's own process (the API load's clients, its polling). ``system_cpu_ms_per_item`` is the system alone:
    its processes, broker and PostgreSQL, without the receiver and the bench's process, which stand for the
    world outside it.
    """

    seconds: float
    machine_busy_cores: float
    bench_cores: float
    foreign_cores: float
    cpu_seconds_by_group: dict[str, float]
    bench_cpu_ms_per_item: float | None = None
    own_cpu_seconds: float = 0.0
    system_cpu_ms_per_item: float | None = None


class CpuMeter:
    """CPU used during a phase: by each watched group, by the bench itself, and by everything else.

    A group's CPU includes that of its processes that ended during the phase (a PostgreSQL backend whose
    connection closed, a worker process replaced), through the ended children's time of the parent that waited
    for them. "foreign" is the machine's busy time minus ours: other users' work on the same cores, the kernel's
    own, or ours that began and ended outside a watched group. A phase with much foreign CPU measured a shared
    machine, not only us.
    """

    def __init__(self, sampler: MemorySampler) -> None:
        self.sampler = sampler
        self.started = time.monotonic()
        self.busy = system_busy_seconds()
        self.groups = self._by_group()
        self.own = self._own()

    def _by_group(self) -> dict[str, dict[int, ProcessCpu]]:
        return {
            label: {pid: cpu for pid in group_members(pgid) if (cpu := process_cpu(pid)) is not None}
            for label, pgid in list(self.sampler.groups.items())
        }

    @staticmethod
    def _own() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self, work_items: int = 0) -> CpuUse:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        busy = system_busy_seconds() - self.busy
        groups = self._by_group()
        per_group = {}
        for label, pids in groups.items():
            per_group[label] = round(group_cpu_delta(self.groups.get(label, {}), pids), 3)
        own = self._own() - self.own
        ours = sum(per_group.values()) + own
        system = sum(cpu for label, cpu in per_group.items() if label != RECEIVER_GROUP)
        return CpuUse(
            seconds=round(elapsed, 2),
            machine_busy_cores=round(busy / elapsed, 2),
            bench_cores=round(ours / elapsed, 2),
            foreign_cores=round(max(busy - ours, 0.0) / elapsed, 2),
            cpu_seconds_by_group=per_group,
            bench_cpu_ms_per_item=round(1000 * ours / work_items, 3) if work_items else None,
            own_cpu_seconds=round(own, 3),
            system_cpu_ms_per_item=round(1000 * system / work_items, 3) if work_items else None,
        )
