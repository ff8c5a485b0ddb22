"""Train/val/test splits over the kept (urban-majority) rows of each city.

- ``authors``: train = constants.AUTHORS_TRAIN_CITIES; the held-out pool (AUTHORS_HELDOUT_CITIES,
  rows concatenated in that city order) is permuted with ``np.random.RandomState(seed)`` (seed 42
  by default, as the authors' scripts seed numpy) and split 50/50 into val (first half) and test.
  Whether this reproduces the authors' exact rows is uncertain (PROTOCOL.md).
- ``random``: a seeded split stratified by majority class over all rows (fractions 0.7/0.15/0.15).
- ``cities``: user-given city lists.
Result: {"train"|"val"|"test": [(city, sorted row indices into that city's kept rows)]}.
"""

from __future__ import annotations

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
               fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Split:
    out: Split = {s: [] for s in SPLITS}
    if kind == "authors":
        for c in AUTHORS_TRAIN_CITIES:
            if c in city_labels and len(city_labels[c]):
                out["train"].append((c, np.arange(len(city_labels[c]))))
        pool = [(c, len(city_labels[c])) for c in AUTHORS_HELDOUT_CITIES if c in city_labels]
        total = sum(n for _, n in pool)
        perm = np.random.RandomState(seed).permutation(total)
        assignment = np.empty(total, dtype=np.int64)
        assignment[perm[: total // 2]] = 0
        assignment[perm[total // 2:]] = 1
        _from_pool(pool, assignment, ("val", "test"), out)
    elif kind == "random":
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
                raise DataError(f"--split cities needs --{s}-cities (comma-separated city names)")
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
