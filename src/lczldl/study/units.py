"""Units of a study: what they are, how they depend on each other, and their completion markers.

A study is a small DAG of units::

    train(regime, seed) -> evaluate(regime, seed) -> calibrate(regime, seed)
    every calibrate -> aggregate (ensembles + summary, soft: runs on whatever finished)
    aggregate -> report (figures + report.html / report.md)

Each unit's completion is one JSON file ``STUDY/units/<unit-id>.json`` written atomically
(temp name + ``os.replace``) *after* the unit's outputs are complete. A unit counts as done only
when its marker says ``"status": "done"`` and records the same ``inputs`` fingerprint as now, so a
rerun skips finished units, retries failed ones, and re-aggregates when the set of finished runs
changed. This module is pure bookkeeping (no torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lczldl.errors import ConfigError
from lczldl.regimes import PAPER_REGIMES, REGIMES

#: Unit kinds in dependency order.
KINDS: tuple[str, ...] = ("train", "evaluate", "calibrate", "aggregate", "report")

#: Default work function of each kind, "module:function"; each takes the unit's spec dict.
DEFAULT_WORK: dict[str, str] = {k: f"lczldl.study.runner:{k}" for k in KINDS}

# Statuses a unit can be in, as shown in study.json and the progress overview.
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"


@dataclass(frozen=True)
class Unit:
    """One schedulable piece of work.

    ``deps`` are unit ids. A *hard* unit runs only when every dep is done and is skipped when one
    failed or was skipped. A *soft* unit (``soft=True``) runs once every dep is settled and at
    least one is done (the aggregate over the runs that finished).
    """

    id: str
    kind: str
    regime: str | None = None
    seed: int | None = None
    deps: tuple[str, ...] = ()
    soft: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def unit_id(kind: str, regime: str | None = None, seed: int | None = None) -> str:
    """Canonical id, e.g. ``train-dist-seed3``; grid-free kinds are just the kind."""
    if regime is None:
        return kind
    return f"{kind}-{regime}-seed{seed}"


def build_units(regimes: Sequence[str], seeds: Sequence[int]) -> list[Unit]:
    """The study's DAG in a stable, runnable order (trains first, seeds interleaved by regime).

    Trains come first so that on N workers the slow units start early; evaluate/calibrate of a
    run become ready as soon as its train unit finishes.
    """
    units: list[Unit] = []
    grid = [(r, s) for s in seeds for r in regimes]
    for r, s in grid:
        units.append(Unit(unit_id("train", r, s), "train", r, s))
    for r, s in grid:
        units.append(Unit(unit_id("evaluate", r, s), "evaluate", r, s, deps=(unit_id("train", r, s),)))
        units.append(Unit(unit_id("calibrate", r, s), "calibrate", r, s,
                          deps=(unit_id("evaluate", r, s),)))
    cal = tuple(unit_id("calibrate", r, s) for r, s in grid)
    units.append(Unit("aggregate", "aggregate", deps=cal, soft=True))
    units.append(Unit("report", "report", deps=("aggregate",)))
    return units


# ---------------------------------------------------------------------------------------------
# parsing of the grid
# ---------------------------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_seeds(text: str | int | Iterable[int]) -> list[int]:
    """``"0-4"`` -> [0..4], ``"0,2"`` -> [0, 2], ``"0-2,7"`` -> [0, 1, 2, 7]; order kept, no repeats."""
    if isinstance(text, int):
        items: list[int] = [text]
    elif isinstance(text, str):
        items = []
        parts = [p for p in text.split(",")]
        if not text.strip() or any(not p.strip() for p in parts):
            raise ConfigError(f"seeds {text!r}: empty item; write e.g. 0-4 or 0,1,2")
        for p in parts:
            m = _RANGE.match(p)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ConfigError(f"seeds {text!r}: range {p.strip()} runs backwards; write e.g. 0-4")
                items.extend(range(lo, hi + 1))
            elif p.strip().isdigit():
                items.append(int(p.strip()))
            else:
                raise ConfigError(f"seeds {text!r}: {p.strip()!r} is not a seed or range; write e.g. 0-4 or 0,1,2")
    else:
        items = [int(x) for x in text]
    if any(s < 0 for s in items):
        raise ConfigError(f"seeds {text!r}: seeds must be >= 0")
    out: list[int] = []
    for s in items:
        if s not in out:
            out.append(s)
    if not out:
        raise ConfigError("seeds: no seed given; write e.g. 0-4 or 0,1,2")
    return out


def parse_regimes(text: str | Sequence[str] | None) -> list[str]:
    """Comma list (or list) of regimes; ``None`` -> the paper's four. Unknown names raise ConfigError."""
    if text is None:
        return list(PAPER_REGIMES)
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]
    if not names:
        raise ConfigError(f"regimes {text!r}: empty; choose from {', '.join(REGIMES)}")
    bad = [n for n in names if n not in REGIMES]
    if bad:
        raise ConfigError(f"regimes: unknown {', '.join(bad)}; choose from {', '.join(REGIMES)}")
    return list(dict.fromkeys(names))


def thread_share(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker when ``workers`` units share ``cores`` cores (at least 1)."""
    if workers < 1:
        raise ConfigError(f"workers={workers}: must be >= 1")
    cores = cores if cores is not None else available_cores()
    return max(1, cores // workers)


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# markers
# ---------------------------------------------------------------------------------------------

def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (the unit's inputs)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def marker_path(study: Path, uid: str) -> Path:
    return Path(study) / "units" / f"{uid}.json"


def log_path(study: Path, uid: str) -> Path:
    return Path(study) / "logs" / f"{uid}.log"


def read_marker(study: Path, uid: str) -> dict[str, Any] | None:
    """The unit's marker, or None when absent or unreadable (an unreadable one counts as absent)."""
    p = marker_path(study, uid)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def is_done(study: Path, uid: str, inputs: str | None = None) -> bool:
    """True when the unit's marker says done (and, if given, with the same inputs fingerprint)."""
    m = read_marker(study, uid)
    if not m or m.get("status") != DONE:
        return False
    return inputs is None or m.get("inputs") == inputs
