"""The bench's CPU figures per process group: the work of processes that ended during a phase counts."""

import os
import sys

import pytest

from bench.procs import CpuMeter, MemorySampler, Proc, ProcessCpu, group_cpu_delta
from tests.support.processes import wait_until

# The leader, once the file named by its argument exists, forks a child that spends BURN_SECONDS of CPU, waits for
# it to end, and says so.
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


@pytest.mark.parametrize(
    ("before", "after", "spent"),
    [
        pytest.param(  # a child (2) that had spent 5 s spends 2 s more and ends, waited for by its leader (1)
            {1: ProcessCpu(1.0, 0.0, parent=0), 2: ProcessCpu(5.0, 0.0, parent=1)},
            {1: ProcessCpu(1.5, 7.0, parent=0)},
            2.5,
            id="ended, waited for in the group: only what it spent after the first reading",
        ),
        pytest.param(  # the first ends with a parent the group does not hold; the second spends 1 s
            {7: ProcessCpu(9.0, 0.0, parent=99), 8: ProcessCpu(1.0, 0.0, parent=0)},
            {8: ProcessCpu(2.0, 0.0, parent=0)},
            1.0,
            id="ended, its parent not read: nothing taken off for a CPU nobody added",
        ),
        pytest.param(  # the leader lets its children be reaped without waiting: its ended children's time stays
            {1: ProcessCpu(1.0, 0.0, parent=0), 2: ProcessCpu(3.0, 0.0, parent=1)},
            {1: ProcessCpu(2.0, 0.0, parent=0)},
            1.0,
            id="ended, never waited for: its work is lost, the group's figure never below the rest",
        ),
    ],
)
def test_a_groups_cpu_between_two_readings(
    before: dict[int, ProcessCpu], after: dict[int, ProcessCpu], spent: float
) -> None:
    assert group_cpu_delta(before, after) == spent


def wait_for(proc: Proc, line: str) -> None:
    wait_until(lambda: line in proc.tail() or not proc.alive(), message=f"{line!r} from the forker")
    assert line in proc.tail(), proc.tail()
