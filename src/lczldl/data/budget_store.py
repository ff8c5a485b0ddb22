"""Owns reading a store under a vote budget: its training-side splits (:data:`BUDGET_SPLITS`) built
from k of each image's votes (``data.vote_budget``), so that training (the Lightning loop and the
packed engine) and evaluation take every target from one place,
:func:`lczldl.data.store.make_targets`, on the reduced split.

A budget split is the label rules of :mod:`lczldl.data.labels` applied to the votes
:func:`lczldl.data.vote_budget.reduce_votes` keeps (majority with the store's tie label
``original``, urban distribution with the store's own ``smoothing``, vote entropy); images whose
k votes have no urban majority or no urban vote are left out (their images and rows follow); the
test split keeps every vote. The targets fitted on every vote (Dawid-Skene, crowd-kit) are refused
(:data:`lczldl.data.store.BUDGET_TARGETS`). Pure numpy on the store's arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from lczldl.constants import N_URBAN
from lczldl.data.image_file import ImageFile
from lczldl.data.labels import DROP_NO_URBAN_VOTES, DROP_NON_URBAN, build_labels
from lczldl.data.store import SplitArrays, Store, open_store
from lczldl.data.vote_budget import reduce_votes
from lczldl.errors import DataError

#: the splits a vote budget rebuilds (training, early stopping, temperature fitting, conformal
#: calibration); test keeps every vote
BUDGET_SPLITS: tuple[str, ...] = ("train", "val")


class BudgetLike(Protocol):
    """A vote budget (``lczldl.config.VoteBudgetConfig``): k votes per image (None = all), drawn by
    ``mode`` ("random" | "panel") with ``seed``."""

    k: int | None
    mode: str
    seed: int


class RowSubset:
    """Rows ``rows`` of an :class:`ImageFile`, numbered 0..len-1 (the images a budget keeps); reads
    and prefetches go to the file's own rows."""

    def __init__(self, base: ImageFile, rows: np.ndarray) -> None:
        self.base, self.rows = base, np.asarray(rows, dtype=np.int64)
        self.path = base.path
        self.shape = (len(self.rows),) + tuple(base.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def _map(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        return self.rows[rows]

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """As :meth:`ImageFile.read`, rows of the subset."""
        return self.base.read(self._map(rows))

    def prefetch(self, rows: Sequence[int] | np.ndarray) -> None:
        self.base.prefetch(self._map(rows))

    def close(self) -> None:
        self.base.close()


def budget_split(arrays: SplitArrays, budget: BudgetLike, smoothing: float = 0.0) -> SplitArrays:
    """``arrays`` with its votes cut to ``budget.k`` per image (:func:`~lczldl.data.vote_budget.reduce_votes`,
    seeded with ``budget.seed``) and the label rules applied to them (module docstring, the store's
    ``smoothing``); ``budget`` of the result records the draw and the counts: k, mode, seed, columns
    (a panel's experts), rows, kept, short_rows, no_urban_rows, lost_urban_rows, dropped {reason:
    rows}. Dawid-Skene is NaN there and the crowd-kit columns are not carried (refused anyway)."""
    if not arrays.has_votes:
        raise DataError(f"split {arrays.name}: a vote budget needs a store with expert votes (this one has one "
                        "label per image); set data.vote_budget.k to null")
    red = reduce_votes(np.asarray(arrays.votes), budget.k, mode=budget.mode, seed=budget.seed)
    lab = build_labels(red.votes, np.asarray(arrays.original), smoothing=smoothing,
                       where=f"store split {arrays.name}")
    keep = np.flatnonzero(lab.keep)
    record = {"k": red.k, "mode": red.mode, "seed": int(budget.seed),
              "columns": list(red.columns) if red.columns is not None else None,
              "rows": int(arrays.n), "kept": int(len(keep)), "short_rows": red.short_rows,
              "no_urban_rows": red.no_urban_rows, "lost_urban_rows": red.lost_urban_rows,
              "dropped": {DROP_NON_URBAN: lab.dropped[DROP_NON_URBAN], DROP_NO_URBAN_VOTES: lab.dropped[DROP_NO_URBAN_VOTES]}}
    return SplitArrays(
        name=arrays.name, n=int(len(keep)), image=RowSubset(arrays.image, keep),     # type: ignore[arg-type]
        label=lab.label[keep], distribution=lab.distribution[keep],
        dawid_skene=np.full((len(keep), N_URBAN), np.nan, dtype=np.float32),
        votes=np.asarray(red.votes)[keep], original=np.asarray(arrays.original)[keep],
        city=np.asarray(arrays.city)[keep], vote_entropy=lab.entropy[keep],
        row=None if arrays.row is None else np.asarray(arrays.row)[keep], aggregated={},
        num_classes=arrays.num_classes, budget=record)


class BudgetedStore(Store):
    """A store whose training-side splits (:data:`BUDGET_SPLITS`) are built from ``budget.k`` votes
    per image (:func:`budget_split`, with the store's own smoothing); test is the store's. Made by
    :func:`open_budget_store` with a budget."""

    def __init__(self, path: Path, budget: BudgetLike) -> None:
        super().__init__(path)
        self.budget = budget
        self._budgeted: dict[str, SplitArrays] = {}

    def split(self, name: str) -> SplitArrays:
        if name not in BUDGET_SPLITS:
            return super().split(name)
        if name not in self._budgeted:
            smoothing = float((self.manifest.get("config") or {}).get("smoothing") or 0.0)
            self._budgeted[name] = budget_split(super().split(name), self.budget, smoothing)
        return self._budgeted[name]


def open_budget_store(path: Path, budget: BudgetLike | None) -> Store:
    """The store at ``path`` read under ``budget`` (the config's ``data.vote_budget``): a
    :class:`BudgetedStore` when it has a k, else :func:`lczldl.data.store.open_store`'s."""
    if budget is not None and budget.k is not None:
        return BudgetedStore(Path(path), budget)
    return open_store(Path(path))


def budget_counts(store: Store) -> dict[str, dict] | None:
    """{split: the budget record of its training-side split} of a :class:`BudgetedStore` (what
    run.json's ``vote_budget`` holds); None for a store without a budget."""
    if not isinstance(store, BudgetedStore):
        return None
    return {s: dict(store.split(s).budget or {}) for s in BUDGET_SPLITS if s in store.splits}
