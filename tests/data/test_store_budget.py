"""A store read under a vote budget: its training-side splits are the label rules applied by hand to
the k votes ``reduce_votes`` keeps (majority with the original label breaking ties, urban vote
shares), images without an urban k-vote majority are left out and counted, images follow their
rows, the test split and every target of the store without a budget are unchanged, and the targets
fitted on every vote are refused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from lczldl.config import VoteBudgetConfig
from lczldl.data.budget_store import BudgetedStore, budget_counts, open_budget_store
from lczldl.data.labels import build_labels
from lczldl.data.prepare import prepare_store
from lczldl.data.store import LCZDataset, make_targets, open_store, require_targets
from lczldl.data.vote_budget import reduce_votes
from lczldl.errors import DataError

#: European cities of the authors' split: 2 train, 2 held out (val / test drawn from them)
CITIES = ("amsterdam", "berlin", "madrid", "munich")
ROWS = [
    [2] * 6 + [11] * 5,                        # urban majority, many non-urban votes: k = 3 may lose it
    [4, 12, 13] + [0] * 8,                     # three-way tie -> original LCZ 4; one urban vote of three
    [5, 5] + [0] * 9,                          # two votes only: short for k = 3
    [1, 1, 1, 1, 3, 3, 3, 3, 3, 0, 0],         # nine votes, two classes
    [6] * 11,                                  # unanimous
    [8, 9, 10, 8, 9, 10, 8, 9, 10, 8, 9],      # three urban classes
]
ORIGINAL = [2, 4, 5, 1, 6, 8]


def _write_raw(root: Path) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    votes = np.array(ROWS * 4)
    original = np.array(ORIGINAL * 4)[:, None]
    for city in CITIES:
        with h5py.File(root / f"{city}.h5", "w") as f:
            f["sen2"] = rng.integers(0, 3000, (len(votes), 32, 32, 10)) / 10000.0
            f["label"] = np.concatenate([votes, original], axis=1)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("budget")
    prepare_store(_write_raw(root / "raw"), root / "store", progress=False)
    return root / "store"


def by_hand(votes: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept (N,) bool, label (N,), urban distribution (N, 10)) of votes with the release's rules,
    written out with a Counter: the most frequent LCZ, the original label on a tie (or without any
    vote); kept when that is
    urban and the row has an urban vote; distribution = urban counts / urban votes."""
    kept, label, dist = [], [], []
    for row, orig in zip(votes.tolist(), original.tolist(), strict=True):
        c = Counter(v for v in row if v != 0)
        top = max(c.values(), default=0)                  # no vote left: a tie of all 17, the original
        cands = [k for k, n in c.items() if n == top]
        majority = cands[0] if len(cands) == 1 else orig
        urban = {k: n for k, n in c.items() if 1 <= k <= 10}
        kept.append(1 <= majority <= 10 and bool(urban))
        label.append(majority - 1)
        d = np.zeros(10)
        for k, n in urban.items():
            d[k - 1] = n / sum(urban.values())
        dist.append(d)
    return np.array(kept), np.array(label), np.array(dist)


@pytest.mark.parametrize("k,mode,seed", [(1, "random", 0), (3, "random", 7), (3, "panel", 2)])
def test_budget_targets_are_the_label_rules_on_the_kept_votes(store, k, mode, seed):
    plain = open_store(store)
    budgeted = open_budget_store(store, VoteBudgetConfig(k=k, mode=mode, seed=seed))
    for split in ("train", "val"):
        full = plain.split(split)
        red = reduce_votes(np.asarray(full.votes), k, mode=mode, seed=seed)
        kept, label, dist = by_hand(red.votes, np.asarray(full.original))
        rows = np.flatnonzero(kept)
        got = budgeted.split(split)
        assert got.n == len(rows) and got.n < full.n                  # the fixture's votes lose rows at k <= 3
        np.testing.assert_array_equal(got.label, label[rows])
        np.testing.assert_allclose(make_targets(got, "distribution"), dist[rows], atol=1e-7)
        np.testing.assert_array_equal(make_targets(got, "onehot"), np.eye(10, dtype=np.float32)[label[rows]])
        np.testing.assert_allclose(make_targets(got, "distribution_ls", eps=0.1), 0.9 * dist[rows] + 0.01, atol=1e-6)
        np.testing.assert_array_equal(got.votes, red.votes[rows])
        np.testing.assert_array_equal(got.row, np.asarray(full.row)[rows])
        lab = build_labels(red.votes, np.asarray(full.original))      # the library's rules agree
        np.testing.assert_array_equal(lab.keep, kept)
        # the images follow their rows
        np.testing.assert_array_equal(got.image.read([0, got.n - 1]), full.image.read(rows[[0, -1]]))
        ds = LCZDataset(budgeted, split, target="distribution")
        assert len(ds) == got.n and np.allclose(ds[[1]]["target"].numpy(), dist[rows[[1]]])
        # the counts recorded
        valid = (red.votes != 0).sum(axis=1)
        urban = ((red.votes >= 1) & (red.votes <= 10)).sum(axis=1)
        rec = got.budget
        assert rec["k"] == k and rec["mode"] == mode and rec["seed"] == seed and rec["rows"] == full.n
        assert rec["kept"] == len(rows) and rec["short_rows"] == int((valid < k).sum())
        assert rec["no_urban_rows"] == int((urban == 0).sum())
        non_urban = np.array([not 1 <= lb + 1 <= 10 for lb in label])
        assert rec["dropped"]["non_urban_majority"] == int(non_urban.sum())
        assert rec["dropped"]["no_urban_votes"] == int((~non_urban & (urban == 0)).sum())
        assert budget_counts(budgeted)[split] == rec
    assert budget_counts(plain) is None


def test_the_test_split_and_a_budget_of_all_votes_are_the_store(store):
    plain, budgeted = open_store(store), open_budget_store(store, VoteBudgetConfig(k=1))
    a, b = plain.split("test"), budgeted.split("test")
    assert b.budget is None and a.n == b.n
    for name in ("label", "distribution", "votes", "vote_entropy"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(make_targets(a, "distribution"), make_targets(b, "distribution"))
    assert isinstance(budgeted, BudgetedStore)
    for budget in (None, VoteBudgetConfig(), VoteBudgetConfig(k="all")):
        s = open_budget_store(store, budget)
        assert type(s) is type(plain) and s.split("train").n == plain.split("train").n


def test_targets_fitted_on_every_vote_are_refused_under_a_budget(store):
    budgeted = open_budget_store(store, VoteBudgetConfig(k=3))
    with pytest.raises(DataError, match="dawid_skene.*cannot be built from a vote budget"):
        make_targets(budgeted.split("train"), "dawid_skene")
    with pytest.raises(DataError, match="cannot be built from a vote budget"):
        require_targets(budgeted, ["distribution", "dawid_skene"])
    require_targets(budgeted, ["distribution", "onehot_ls"])                 # these it rebuilds
    require_targets(open_store(store), ["dawid_skene"])                      # and without a budget all


def test_a_budget_seed_draws_the_same_votes_every_time(store):
    a = open_budget_store(store, VoteBudgetConfig(k=2, seed=4)).split("train")
    b = open_budget_store(store, VoteBudgetConfig(k=2, seed=4)).split("train")
    c = open_budget_store(store, VoteBudgetConfig(k=2, seed=5)).split("train")
    np.testing.assert_array_equal(a.votes, b.votes)
    full = np.asarray(open_store(store).split("train").votes)
    assert not np.array_equal(reduce_votes(full, 2, seed=4).votes, reduce_votes(full, 2, seed=5).votes)
    assert c.budget["seed"] == 5
