"""Vote budget: k votes per image drawn without replacement (reproducible, uniform over the valid
votes), the same k experts for every image, rows with fewer votes and rows left without an urban
vote counted, k = all unchanged, and the label rules applied to the reduced votes."""

from __future__ import annotations

import numpy as np
import pytest

from lczldl.data.labels import build_labels
from lczldl.data.vote_budget import reduce_votes

VOTES = np.array([
    [3, 3, 5, 5, 5, 0, 0, 0, 0, 0, 0],          # 5 valid votes
    [6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6],          # 11
    [0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],          # 1: fewer than k
    [12, 12, 12, 4, 0, 0, 0, 0, 0, 0, 0],       # one urban vote among four
], dtype=np.int8)


def is_sub_multiset(small: np.ndarray, big: np.ndarray) -> bool:
    a, b = np.bincount(small[small > 0], minlength=18), np.bincount(big[big > 0], minlength=18)
    return bool((a <= b).all())


def test_random_keeps_k_of_the_valid_votes_in_place():
    got = reduce_votes(VOTES, 3, mode="random", seed=1)
    assert got.votes.shape == VOTES.shape and got.votes.dtype == VOTES.dtype
    assert (got.votes != 0).sum(axis=1).tolist() == [3, 3, 1, 3]
    kept = got.votes != 0
    assert (got.votes[kept] == VOTES[kept]).all()                    # a vote stays in its column
    assert all(is_sub_multiset(got.votes[i], VOTES[i]) for i in range(len(VOTES)))
    assert got.short_rows == 1 and got.k == 3 and got.mode == "random" and got.columns is None
    again = reduce_votes(VOTES, 3, mode="random", seed=1)
    assert (again.votes == got.votes).all()                          # reproducible with the seed
    others = [reduce_votes(VOTES, 3, mode="random", seed=s).votes for s in range(2, 8)]
    assert any((o != got.votes).any() for o in others)


def test_random_is_uniform_over_the_valid_votes():
    votes = np.tile(VOTES[:1], (6000, 1))                            # 5 valid votes, keep 2
    kept = reduce_votes(votes, 2, mode="random", seed=0).votes[:, :5] != 0
    share = kept.mean(axis=0)                                        # each vote kept w.p. 2 / 5
    assert np.abs(share - 0.4).max() < 4 * np.sqrt(0.4 * 0.6 / 6000)
    pairs = np.unique(kept.astype(int) @ (1 << np.arange(5)), return_counts=True)[1]
    assert len(pairs) == 10 and np.abs(pairs / 6000 - 0.1).max() < 4 * np.sqrt(0.1 * 0.9 / 6000)


def test_panel_keeps_the_same_experts_for_every_image():
    got = reduce_votes(VOTES, 2, mode="panel", columns=[1, 3])
    expected = np.zeros_like(VOTES)
    expected[:, [1, 3]] = VOTES[:, [1, 3]]
    assert (got.votes == expected).all() and got.columns == (1, 3)
    assert got.short_rows == 1                                       # row 2: expert 3 gave no vote
    drawn = reduce_votes(VOTES, 4, mode="panel", seed=3)
    cols = list(drawn.columns)
    assert len(set(cols)) == 4 and (drawn.votes[:, [c for c in range(11) if c not in cols]] == 0).all()
    assert drawn.columns == reduce_votes(VOTES, 4, mode="panel", seed=3).columns


def test_rows_left_without_an_urban_vote_are_counted():
    got = reduce_votes(VOTES, 3, mode="panel", columns=[0, 1, 2])
    # row 2 keeps its LCZ 2 vote; row 3 keeps 12, 12, 12 and loses its only urban vote (LCZ 4)
    assert (got.no_urban_rows, got.lost_urban_rows) == (1, 1)
    assert got.short_rows == 1                                       # row 2: one valid vote
    base = np.array([[12, 13, 0]], dtype=np.int8)                    # no urban vote before the cut
    got = reduce_votes(base, 1, mode="random", seed=0)
    assert (got.no_urban_rows, got.lost_urban_rows, got.short_rows) == (1, 0, 0)


@pytest.mark.parametrize("k", [None, "all"])
def test_all_votes_unchanged(k):
    got = reduce_votes(VOTES, k)
    assert (got.votes == VOTES).all() and got.k is None and got.mode == "all"
    assert (got.short_rows, got.no_urban_rows, got.lost_urban_rows) == (0, 0, 0)


def test_label_rules_apply_to_the_reduced_votes():
    original = np.array([4, 6, 2, 4])
    three = build_labels(reduce_votes(VOTES, 3, mode="panel", columns=[0, 1, 2]).votes, original)
    assert three.majority[0] == 3                                    # votes 3, 3, 5
    assert three.majority[3] == 12 and not three.keep[3]             # non-urban majority: dropped
    two = build_labels(reduce_votes(VOTES, 2, mode="panel", columns=[0, 2]).votes, original)
    assert two.majority[0] == 4                                      # 3 vs 5: tie -> original label
    np.testing.assert_allclose(two.distribution[0, [2, 4]], [0.5, 0.5])


def test_bad_arguments():
    with pytest.raises(ValueError):
        reduce_votes(VOTES, 0)
    with pytest.raises(ValueError):
        reduce_votes(VOTES, "three")
    with pytest.raises(ValueError):
        reduce_votes(VOTES, 2, mode="experts")
    with pytest.raises(ValueError):
        reduce_votes(VOTES, 2, mode="random", columns=[0, 1])
    with pytest.raises(ValueError):
        reduce_votes(VOTES, 12, mode="panel")
    with pytest.raises(ValueError):
        reduce_votes(VOTES, 2, mode="panel", columns=[1, 1])
