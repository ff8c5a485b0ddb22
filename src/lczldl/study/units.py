"""Owns the units of a study: what they are, how they depend on each other, and their completion markers.

A study is a small DAG of units::

    train(regime, seed) -> evaluate(regime, seed) -> calibrate(regime, seed)
    every calibrate -> aggregate (ensembles + summary, soft: runs on whatever finished)
    aggregate -> report (figures + report.html / report.md)

With a vote-budget grid (``lczldl study --vote-budget 1,3``) every budget k adds the same chain for
the runs trained on k votes per image (ids ``train-k3-dist-seed0`` ... ``aggregate-k3``), and a
``budget`` unit (soft, after every aggregate) writes the table over k; the report then follows
``aggregate`` and ``budget`` (soft). Without one the DAG above is unchanged.

With packs (``lczldl study --pack N``, N > 1) the grid's train units are *carried* by pack units
``pack-I`` (N members each): a pack unit trains its members in one process and records each
member's train marker as the member finishes or fails; a carried train unit never runs by
itself (it is done when its marker is, with the same inputs as an unpacked train unit, so a
study can switch pack sizes and keep its finished runs).

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
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lczldl.errors import ConfigError
from lczldl.fileio import atomic_write_json
from lczldl.layout import marker_path

#: Unit kinds in dependency order ("pack" carries train units, see :func:`build_units`).
KINDS: tuple[str, ...] = ("train", "pack", "evaluate", "calibrate", "aggregate", "budget", "report")

#: Default work function of each kind, "module:function"; each takes the unit's spec dict.
DEFAULT_WORK: dict[str, str] = {k: f"lczldl.study.work:{k}" for k in KINDS}

# Statuses a unit can be in, as shown in study.json and the progress overview.
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"


@dataclass(frozen=True)
class Unit:
    """One schedulable piece of work.

    ``deps`` are unit ids. A *hard* unit runs only when every dep is done and is skipped when one
    failed or was skipped. A *soft* unit (``soft=True``) runs once every dep is settled and at
    least one is done (the aggregate over the runs that finished). A pack unit lists the train
    units it trains in ``members``; each of those names it in ``pack``.
    """

    id: str
    kind: str
    regime: str | None = None
    seed: int | None = None
    deps: tuple[str, ...] = ()
    soft: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    members: tuple[str, ...] = ()
    pack: str | None = None
    #: the vote budget k of the unit's runs (STUDY/budget/k<k>); None: the study's own runs
    budget: int | None = None


def unit_id(kind: str, regime: str | None = None, seed: int | None = None, budget: int | None = None) -> str:
    """Canonical id, e.g. ``train-dist-seed3`` (``train-k3-dist-seed3`` under vote budget 3);
    grid-free kinds are just the kind (``aggregate-k3``)."""
    prefix = kind if budget is None else f"{kind}-k{int(budget)}"
    if regime is None:
        return prefix
    return f"{prefix}-{regime}-seed{seed}"


def build_units(regimes: Sequence[str], seeds: Sequence[int], pack: int = 1,
                budgets: Sequence[int] = ()) -> list[Unit]:
    """The study's DAG in a stable, runnable order (trains first, seeds interleaved by regime).

    Trains come first so that on N workers the slow units start early; evaluate/calibrate of a
    run become ready as soon as its train unit finishes. ``pack`` > 1: consecutive runs of that
    order, ``pack`` at a time (the last pack may be smaller), are carried by pack units
    ``pack-0``, ``pack-1``, ... ``budgets``: the vote-budget grid (module docstring); its runs
    follow the study's own in the same order, budget by budget, packed within a budget (one config
    per pack).
    """
    if pack < 1:
        raise ConfigError(f"pack={pack}: must be >= 1")
    units: list[Unit] = []
    grid = [(r, s) for s in seeds for r in regimes]
    levels: list[int | None] = [None, *budgets]
    chunks = [(b, grid[i:i + pack]) for b in levels for i in range(0, len(grid), pack)] if pack > 1 else []
    carrier = {(b, *rs): f"pack-{i}" for i, (b, chunk) in enumerate(chunks) for rs in chunk}
    for b in levels:
        for r, s in grid:
            units.append(Unit(unit_id("train", r, s, b), "train", r, s, pack=carrier.get((b, r, s)), budget=b))
    for i, (b, chunk) in enumerate(chunks):
        units.append(Unit(f"pack-{i}", "pack", members=tuple(unit_id("train", r, s, b) for r, s in chunk), budget=b))
    for b in levels:
        for r, s in grid:
            units.append(Unit(unit_id("evaluate", r, s, b), "evaluate", r, s, deps=(unit_id("train", r, s, b),),
                              budget=b))
            units.append(Unit(unit_id("calibrate", r, s, b), "calibrate", r, s,
                              deps=(unit_id("evaluate", r, s, b),), budget=b))
        cal = tuple(unit_id("calibrate", r, s, b) for r, s in grid)
        units.append(Unit(unit_id("aggregate", budget=b), "aggregate", deps=cal, soft=True, budget=b))
    if budgets:
        units.append(Unit("budget", "budget", deps=tuple(unit_id("aggregate", budget=b) for b in levels), soft=True))
        units.append(Unit("report", "report", deps=("aggregate", "budget"), soft=True))
    else:
        units.append(Unit("report", "report", deps=("aggregate",)))
    return units


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


def read_marker(study: Path, uid: str) -> dict[str, Any] | None:
    """The unit's marker, or None when absent or unreadable (an unreadable one counts as absent)."""
    try:
        m = json.loads(marker_path(study, uid).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def write_marker(study: Path, uid: str, *, kind: str | None, inputs: str | None, status: str,
                 log: str, **fields: Any) -> dict[str, Any]:
    """Write the unit's marker atomically (``status`` done | failed; ``fields`` such as error,
    result, wall_s, started, host) with the finish time and a unique completion token (downstream
    fingerprints change whenever a unit is redone, even within one second); returns it."""
    marker = {"id": uid, "kind": kind, "inputs": inputs, "log": log, **fields, "status": status,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "completion": uuid.uuid4().hex}
    atomic_write_json(marker_path(study, uid), marker)
    return marker


def settled_marker(study: Path, uid: str, inputs: str) -> dict[str, Any] | None:
    """The unit's marker when it records a result (done or failed) for these ``inputs``, else None.

    The one test of whether a recorded result still holds: a marker written for other inputs
    (changed config, redone upstream unit) counts as absent."""
    m = read_marker(study, uid)
    if m and m.get("status") in (DONE, FAILED) and m.get("inputs") == inputs:
        return m
    return None
