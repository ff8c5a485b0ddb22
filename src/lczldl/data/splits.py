"""Train/val/test splits over the kept (urban-majority) rows of each city (pure numpy).

Result: {"train"|"val"|"test": [(city, sorted row indices into that city's KEPT rows)]}, cities in
the order they are listed (authors: constants order; random: ``city_labels`` order).

- ``authors`` (the authors' "sophisticated" split, PROTOCOL.md): train = every kept row of
  constants.AUTHORS_TRAIN_CITIES. The held-out pool is AUTHORS_HELDOUT_CITIES concatenated in that
  order (cities first, then addons, as in their script). Their script does
  ``np.random.seed(42); val = np.random.choice(arange(P), ceil(0.5 P), replace=False)`` over ALL P
  rows of the pool (before the urban filter) and test = the rest; legacy ``choice`` without
  replacement is ``permutation(P)[:size]``, so we take ``RandomState(seed).permutation(P)``, its
  first ceil(P/2) entries = val, the rest = test, and then keep only kept rows. Pass
  ``city_keep`` ({city: (n_file,) bool keep mask}) to draw over all file rows exactly like this;
  without it the draw is over the kept rows only (a different, equally valid 50/50 split).
  Matching the authors' exact rows also needs their exact files and label rules; whether the
  paper used this split at all is uncertain. Cities missing from the raw folder are skipped
  (which changes P and hence the draw).
- ``random``: seeded split stratified by majority class over all kept rows of all cities:
  within each class, ``np.random.default_rng(seed).permutation`` and the first round(f_train n)
  rows -> train, the next round(f_val n) -> val, the rest -> test.
- ``cities``: user-given city lists; an unknown city, a city in two lists or a city without a
  vote file is a DataError.
Every split must end up with at least one row, else DataError.

:func:`carve_validation` is the So2Sat LCZ42 v3 case (no validation file): a seeded, class-stratified
share of the training file's rows becomes the validation split (:data:`CARVE_METHOD`).
"""

from __future__ import annotations

import math

import numpy as np

from lczldl.constants import ALL_CITIES, AUTHORS_HELDOUT_CITIES, AUTHORS_TRAIN_CITIES
from lczldl.errors import DataError

SPLITS = ("train", "val", "test")
Split = dict[str, list[tuple[str, np.ndarray]]]


def _from_pool(pool: list[tuple[str, int]], assignment: np.ndarray, split_names: tuple[str, ...],
               out: Split) -> None:
    offsets = np.cumsum([0] + [n for _, n in pool])
    for (city, _), lo, hi in zip(pool, offsets[:-1], offsets[1:], strict=True):
        part = assignment[lo:hi]
        for s_i, s in enumerate(split_names):
            rows = np.nonzero(part == s_i)[0]
            if rows.size:
                out[s].append((city, rows))


def make_split(kind: str, city_labels: dict[str, np.ndarray], *, seed: int = 42,
               train_cities: list[str] | None = None, val_cities: list[str] | None = None,
               test_cities: list[str] | None = None,
               fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
               city_keep: dict[str, np.ndarray] | None = None) -> Split:
    """Split the kept rows; ``city_labels`` maps city -> (n_kept,) class indices in row order.

    ``city_keep`` (authors only, optional): city -> (n_file,) bool keep mask of the file's rows
    (its True count must equal len(city_labels[city])), to draw the authors' permutation over all
    file rows as their script does. See the module docstring for each ``kind``.
    """
    out: Split = {s: [] for s in SPLITS}
    unknown = [c for c in city_labels if c not in ALL_CITIES]
    if unknown:
        raise DataError(f"unknown city '{unknown[0]}' in the split input; known: {', '.join(ALL_CITIES)}")
    if kind == "authors":
        for c in AUTHORS_TRAIN_CITIES:
            if c in city_labels and len(city_labels[c]):
                out["train"].append((c, np.arange(len(city_labels[c]))))
        held = [c for c in AUTHORS_HELDOUT_CITIES if c in city_labels]
        masks = []
        for c in held:
            n_kept = len(city_labels[c])
            if city_keep is not None and c in city_keep:
                m = np.asarray(city_keep[c], dtype=bool)
                if m.ndim != 1 or int(m.sum()) != n_kept:
                    raise DataError(f"city '{c}': keep mask has {int(m.sum())} kept rows but "
                                    f"city_labels has {n_kept}")
            else:
                m = np.ones(n_kept, dtype=bool)
            masks.append(m)
        total = sum(len(m) for m in masks)
        perm = np.random.RandomState(seed).permutation(total)
        file_assignment = np.ones(total, dtype=np.int64)          # 1 = test
        file_assignment[perm[: math.ceil(0.5 * total)]] = 0      # 0 = val
        assignment = file_assignment[np.concatenate(masks)] if masks else file_assignment
        pool = [(c, len(city_labels[c])) for c in held]
        _from_pool(pool, assignment, ("val", "test"), out)
    elif kind == "random":
        fr = np.asarray(fractions, dtype=np.float64)
        if fr.shape != (3,) or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
            raise DataError(f"split fractions must be three numbers >= 0 summing to 1, got {fractions}")
        rng = np.random.default_rng(seed)
        pool = [(c, len(v)) for c, v in city_labels.items()]
        labels = np.concatenate([city_labels[c] for c, _ in pool]) if pool else np.zeros(0, int)
        assignment = np.empty(len(labels), dtype=np.int64)
        for k in np.unique(labels):
            idx = rng.permutation(np.nonzero(labels == k)[0])
            n_tr = int(round(fractions[0] * len(idx)))
            n_va = int(round(fractions[1] * len(idx)))
            assignment[idx[:n_tr]] = 0
            assignment[idx[n_tr:n_tr + n_va]] = 1
            assignment[idx[n_tr + n_va:]] = 2
        _from_pool(pool, assignment, SPLITS, out)
    elif kind == "cities":
        lists = {"train": train_cities, "val": val_cities, "test": test_cities}
        seen: dict[str, str] = {}
        for s, cities in lists.items():
            if not cities:
                raise DataError(f"split=cities needs {s}_cities (comma-separated city names)",
                                params=("split", f"{s}_cities"))
            for c in cities:
                if c not in ALL_CITIES:
                    raise DataError(f"unknown city '{c}' in the {s} split; known: {', '.join(ALL_CITIES)}")
                if c in seen:
                    raise DataError(f"city '{c}' is in both the {seen[c]} and the {s} split")
                if c not in city_labels:
                    raise DataError(f"city '{c}' of the {s} split has no vote file in the raw folder")
                seen[c] = s
                out[s].append((c, np.arange(len(city_labels[c]))))
    else:
        raise DataError(f"unknown split kind '{kind}', use authors, random or cities")
    for s in SPLITS:
        if sum(len(r) for _, r in out[s]) == 0:
            raise DataError(f"the {s} split of kind '{kind}' is empty; check the cities in the raw folder")
    return out


#: How :func:`carve_validation` draws (recorded in the store's manifest).
CARVE_METHOD = ("stratified by class: for each class (in index order) numpy default_rng(seed).permutation "
                "of its rows; the first min(n - 1, max(1, round(share n))) go to validation (none when "
                "the class has one row)")


def carve_validation(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """(N,) class indices of a training file -> sorted row indices carved out as validation
    (:data:`CARVE_METHOD`; the same rows for the same labels, share and seed)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 < share < 1.0:
        raise DataError(f"validation share must lie in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    picked = []
    for k in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == k)[0])
        n_val = min(len(idx) - 1, max(1, int(round(share * len(idx)))))
        picked.append(idx[:n_val])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
