"""Progress lines on stderr, stamped with the seconds since the bench started (the table goes to stdout)."""

from __future__ import annotations

import sys
import time

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"{time.monotonic() - _T0:6.1f}s {message}", file=sys.stderr, flush=True)
