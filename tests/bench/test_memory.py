"""The bench's memory figures: PSS read from /proc beside RSS, for a process and for a whole process group."""

import os
import sys
import time

from bench.procs import MemorySampler, Proc, memory_kb, pss_kb


def test_pss_of_this_process_is_read_and_at_most_its_rss() -> None:
    _, rss = memory_kb(os.getpid())

    pss = pss_kb(os.getpid())

    assert pss is not None
    assert 0 < pss <= rss


def test_pss_of_a_process_that_is_gone_is_none(tmp_path) -> None:
    proc = Proc("gone", [sys.executable, "-c", "pass"], dict(os.environ), tmp_path)
    proc.popen.wait(30)

    assert pss_kb(proc.pid) is None


def test_a_group_unwatched_leaves_its_rss_and_pss_as_last_seen(tmp_path) -> None:
    # given a leader that forks a child, both sleeping
    script = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nelse:\n    print('forked', flush=True); time.sleep(60)"
    proc = Proc("forker", [sys.executable, "-c", script], dict(os.environ), tmp_path)
    sampler = MemorySampler()
    try:
        deadline = time.monotonic() + 30
        while "forked" not in proc.tail() or len(proc.group_pids()) < 2:
            assert proc.alive() and time.monotonic() < deadline, proc.tail()
            time.sleep(0.05)
        leader, child = proc.group_pids()[:2]
        sampler.watch("forker", proc.pid)

        # when the group is unwatched, as stacks do just before they stop a process
        sampler.unwatch("forker")
    finally:
        proc.stop()

    # then each process has its RSS and PSS, and the group the sum of its PSS
    readings = {pid: sampler.last_kb[("forker", pid)] for pid in (leader, child)}
    for rss, pss in readings.values():
        assert pss is not None
        assert 0 < pss <= rss
    assert sampler.group_pss_kb["forker"] == sum(pss for _, pss in readings.values() if pss)
    assert "forker" not in sampler.groups
    assert sampler.peak_kb[("forker", leader)] >= readings[leader][0]
