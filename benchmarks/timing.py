"""Owns the benchmarks' shared timing helper (imported by scripts run as ``python benchmarks/x.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest wall time in seconds of ``repeat`` calls of ``fn`` (shared machines are noisy)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
