"""Objects made once per process: the worker forks its processes, and a pool or a thread does not survive a fork."""

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``make()``'s result, made on first use in each process (so again in a forked child)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._made: tuple[int, T] | None = None

    def get(self) -> T:
        with self._lock:
            if self._made is None or self._made[0] != os.getpid():
                self._made = (os.getpid(), self._make())
            return self._made[1]

    def reset(self) -> None:
        """Makes it anew on next use (after a setting it depends on changed)."""
        with self._lock:
            self._made = None
