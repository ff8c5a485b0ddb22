"""Owns the vote budget: how many expert votes per image a dataset keeps. Pure numpy.

From (N, E) votes in the store's format (LCZ ids 0..17, 0 = no vote, column = expert) it builds the
k-vote subset of every image; the label rules of :mod:`lczldl.data.labels` then apply unchanged to
the reduced votes (``build_labels(reduced.votes, original)``: majority with the authors' tie rule,
urban distribution, one-hot, entropy).

- ``"random"``: k of the image's valid (non-zero) votes, drawn without replacement independently
  for every image (a uniformly random k-subset: the k smallest of one uniform key per vote);
  a row with fewer than k valid votes keeps all of them.
- ``"panel"``: the same k experts (vote columns) for every image: ``columns`` as given, else k
  distinct columns drawn once. A row keeps whatever those experts voted, so a row where one of them
  gave no vote has fewer than k.
- k = None or "all": the votes unchanged.
Dropped votes become 0. Counted: rows with fewer than k valid votes after the cut (``short_rows``),
rows left without any urban vote (LCZ 1..10; the label rules drop them: ``no_urban_rows``) and
among them those that had one before (``lost_urban_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lczldl.constants import VOTE_BUDGET_MODES
from lczldl.data.labels import has_urban_votes, vote_counts

BUDGET_MODES: tuple[str, ...] = VOTE_BUDGET_MODES


@dataclass(frozen=True)
class VoteBudget:
    """The k-vote subset of a votes array and what it cost."""

    votes: np.ndarray                   # (N, E) same dtype as the input, dropped votes set to 0
    k: int | None                       # votes kept per image; None = all
    mode: str                           # "random", "panel" or "all"
    columns: tuple[int, ...] | None     # "panel": the experts kept (column indices), sorted
    short_rows: int                     # rows with fewer than k valid votes after the cut
    no_urban_rows: int                  # rows without any urban vote after the cut
    lost_urban_rows: int                # of those, rows that had an urban vote before


def _panel_columns(n_cols: int, k: int, columns: Sequence[int] | None, rng: np.random.Generator
                   ) -> tuple[int, ...]:
    if k > n_cols:
        raise ValueError(f"panel of {k} experts, the votes have {n_cols} columns")
    if columns is None:
        return tuple(sorted(int(c) for c in rng.choice(n_cols, size=k, replace=False)))
    cols = tuple(sorted(int(c) for c in columns))
    if len(cols) != k or len(set(cols)) != k or min(cols) < 0 or max(cols) >= n_cols:
        raise ValueError(f"panel columns must be {k} distinct indices in 0..{n_cols - 1}, got {list(columns)}")
    return cols


def reduce_votes(votes: np.ndarray, k: int | str | None, *, mode: str = "random", seed: int = 0,
                 columns: Sequence[int] | None = None) -> VoteBudget:
    """The k-vote subset of (N, E) ``votes`` (module docstring). ``seed`` seeds
    np.random.default_rng (the per-image draws of "random", the experts of "panel" when
    ``columns`` is None); ``columns`` is only for "panel"."""
    votes = np.asarray(votes)
    before = has_urban_votes(vote_counts(votes))                     # also checks shape and ids
    if k is None or (isinstance(k, str) and k == "all"):
        none = ~before
        return VoteBudget(votes=votes.copy(), k=None, mode="all", columns=None, short_rows=0,
                          no_urban_rows=int(none.sum()), lost_urban_rows=0)
    if isinstance(k, str) or int(k) != k or k < 1:
        raise ValueError(f"k must be a whole number >= 1, None or 'all', got {k!r}")
    k = int(k)
    if mode not in BUDGET_MODES:
        raise ValueError(f"mode must be one of {BUDGET_MODES}, got {mode!r}")
    if columns is not None and mode != "panel":
        raise ValueError("columns are for mode 'panel' only")
    rng = np.random.default_rng(seed)
    valid = votes != 0
    cols = None
    if mode == "random":
        key = np.where(valid, rng.random(votes.shape), np.inf)       # invalid votes sort last
        rank = np.argsort(np.argsort(key, axis=1, kind="stable"), axis=1, kind="stable")
        keep = valid & (rank < k)
    else:
        cols = _panel_columns(votes.shape[1], k, columns, rng)
        keep = np.zeros(votes.shape, dtype=bool)
        keep[:, list(cols)] = True
        keep &= valid
    out = np.where(keep, votes, 0).astype(votes.dtype)
    after = has_urban_votes(vote_counts(out))
    return VoteBudget(votes=out, k=k, mode=mode, columns=cols, short_rows=int((keep.sum(axis=1) < k).sum()),
                      no_urban_rows=int((~after).sum()), lost_urban_rows=int((before & ~after).sum()))
