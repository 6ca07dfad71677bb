"""The bench's CPU figures per process group: the work of processes that ended during a phase counts."""

import os
import sys
import time

from bench.procs import CpuMeter, MemorySampler, Proc, ProcessCpu, group_cpu_delta

# The leader, once the file named by its argument exists, forks a child that spends BURN_SECONDS of CPU, waits for it to end, and says so.
BURN_SECONDS = 0.3
FORKER = f"""
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
child = os.fork()
if child == 0:
    while time.process_time() < {BURN_SECONDS}:
        pass
    os._exit(0)
os.waitpid(child, 0)
print("reaped", flush=True)
time.sleep(60)
"""


def test_the_cpu_of_a_child_that_ended_mid_phase_counts_for_its_group(tmp_path) -> None:
    # given a watched group whose leader has not forked yet
    go = tmp_path / "go"
    proc = Proc("forker", [sys.executable, "-c", FORKER, str(go)], dict(os.environ), tmp_path)
    sampler = MemorySampler()
    try:
        wait_for(proc, "ready")
        sampler.watch("forker", proc.pid)
        meter = CpuMeter(sampler)

        # when, during the phase, a child is born, spends its CPU, ends and is waited for
        go.touch()
        wait_for(proc, "reaped")
        use = meter.stop(work_items=1)
    finally:
        proc.stop()

    # then the group's CPU holds the child's, which no process of the group runs any more
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert use.cpu_seconds_by_group["forker"] >= BURN_SECONDS - tick


def test_an_ended_process_counts_only_what_it_spent_after_the_first_reading() -> None:
    # given a leader (1) and a child (2) that had spent 5 s before the phase
    before = {
        1: ProcessCpu(own=1.0, ended_children=0.0, parent=0),
        2: ProcessCpu(own=5.0, ended_children=0.0, parent=1),
    }

    # when the child spends 2 s more and ends, waited for by the leader, which spends 0.5 s
    after = {1: ProcessCpu(own=1.5, ended_children=7.0, parent=0)}

    # then the group spent 2.5 s
    assert group_cpu_delta(before, after) == 2.5


def test_an_ended_process_whose_parent_is_not_read_is_not_taken_off() -> None:
    # given a process whose parent is outside the group, and another that lives on
    before = {
        7: ProcessCpu(own=9.0, ended_children=0.0, parent=99),
        8: ProcessCpu(own=1.0, ended_children=0.0, parent=0),
    }

    # when the first ends (its CPU lands with a parent that is not read) and the second spends 1 s
    after = {8: ProcessCpu(own=2.0, ended_children=0.0, parent=0)}

    # then only the second's second counts: nothing is taken off for a CPU nobody added
    assert group_cpu_delta(before, after) == 1.0


def test_an_ended_process_that_no_parent_waited_for_is_not_taken_off() -> None:
    # given a leader that lets its children be reaped without waiting, and a child that had spent 3 s
    before = {
        1: ProcessCpu(own=1.0, ended_children=0.0, parent=0),
        2: ProcessCpu(own=3.0, ended_children=0.0, parent=1),
    }

    # when the child ends and the leader's ended children's time does not grow, while the leader spends 1 s
    after = {1: ProcessCpu(own=2.0, ended_children=0.0, parent=0)}

    # then the group spent the leader's second (the child's work is lost, never negative)
    assert group_cpu_delta(before, after) == 1.0


def wait_for(proc: Proc, line: str) -> None:
    deadline = time.monotonic() + 30
    while line not in proc.tail():
        assert proc.alive() and time.monotonic() < deadline, proc.tail()
        time.sleep(0.02)
