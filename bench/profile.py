"""Optional sampling profiles (``python -m bench --profile``): py-spy on the pipeline's processes during phase (a).

py-spy is not a requirement of the project: install it into the venv to use this
(``.venv/bin/pip install py-spy``). Profiles are written as collapsed stacks
(``-f raw``), one file per process, and summarized as the frames with the most
samples, by themselves ("self") and with what they call ("total").
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


class Profiler:
    def __init__(self, out_dir: Path, targets: dict[str, int], rate: int = 100) -> None:
        self.out_dir = out_dir
        self.targets = targets
        self.rate = rate
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self) -> None:
        binary = py_spy()
        if binary is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.targets.items():
            command = [binary, "record", "-p", str(pid), "-r", str(self.rate), "-f", "raw", "--nonblocking",
                       "-o", str(self.out_dir / f"{name}.txt")]  # fmt: skip
            popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.running.append((name, popen))

    def stop(self) -> dict[str, dict[str, list[tuple[str, float]]]]:
        for _, popen in self.running:
            with contextlib.suppress(OSError):
                popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for _, popen in self.running:
            try:
                popen.wait(60)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
        return {name: summarize(self.out_dir / f"{name}.txt") for name, _ in self.running}


APP_PACKAGES = ("sapien/", "deliveries/", "subscriptions/", "availability/", "peerapp/", "peerproj/")


def _short(frame: str) -> str:
    function, _, where = frame.partition(" (")
    where = where.rstrip(")").split("site-packages/")[-1]
    for package in APP_PACKAGES:
        if f"/{package}" in where:
            where = package + where.split(f"/{package}", 1)[1]
            break
    return f"{function} ({where})"


def _package(short: str) -> str:
    """Where a frame's code lives: the app, a library (first path part) or the standard library."""
    where = short.rpartition(" (")[2].rstrip(")")
    path = where.split(":")[0]
    if path.startswith(APP_PACKAGES):
        return "app:" + path.split("/")[0]
    if "/" in path and not path.startswith("/"):
        return path.split("/")[0]
    return "stdlib:" + Path(path).stem if path else "?"


def summarize(path: Path, top: int = 8) -> dict[str, list[tuple[str, float]]]:
    """Samples by where the running frame's code lives; the hottest frames; the app's inclusive hot spots."""
    if not path.exists():
        return {}
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    app_total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for frame in {frame.rsplit(":", 1)[0] + ")" for frame in frames if _package(frame).startswith("app:")}:
            app_total[frame] += n
    if not samples:
        return {}
    return {
        "samples": [("all", float(samples))],
        "by_package": [(name, round(count / samples, 3)) for name, count in packages.most_common(top)],
        "self": [(frame, round(count / samples, 3)) for frame, count in own.most_common(top)],
        "app_total": [(frame, round(count / samples, 3)) for frame, count in app_total.most_common(top * 2)],
    }
