"""Label rules on hand-made cases, against an independent loop version of the authors' rule, and
against the real vote distributions / entropies in ../shared/data/votes."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from lczldl.data.labels import (
    build_labels,
    has_urban_votes,
    majority_vote,
    one_hot,
    release_vote_counts,
    smooth_distribution,
    smooth_one_hot,
    urban_distribution,
    vote_counts,
    vote_entropy_all_lcz,
    voting_counts,
)
from lczldl.distributions import entropy_nats
from lczldl.errors import DataError


def counts_of(*lcz_ids: int) -> np.ndarray:
    c = np.zeros((1, 17), dtype=np.int64)
    for v in lcz_ids:
        c[0, v - 1] += 1
    return c


# ------------------------------------------------------------------------------------ vote counts
def test_vote_counts_ignores_zero_and_counts_each_lcz():
    votes = np.array([[1, 1, 2, 0, 17], [0, 0, 0, 0, 0], [10, 11, 10, 10, 3]])
    c = vote_counts(votes)
    assert c.shape == (3, 17) and c.dtype == np.int64
    assert c[0, 0] == 2 and c[0, 1] == 1 and c[0, 16] == 1 and c[0].sum() == 4
    assert c[1].sum() == 0
    assert c[2, 9] == 3 and c[2, 10] == 1 and c[2, 2] == 1


@pytest.mark.parametrize("bad", [18, -1, 255])
def test_vote_counts_rejects_ids_outside_0_17(bad):
    with pytest.raises(DataError, match=rf"vote ids must be 0\.\.17.*{bad}"):
        vote_counts(np.array([[1, 2, bad]]), where="x.h5")


def test_vote_counts_rejects_1d():
    with pytest.raises(DataError, match="2-D"):
        vote_counts(np.array([1, 2, 3]))


# ----------------------------------------------------------------------------------------- majority
def test_majority_unique_maximum_wins_regardless_of_tie_label():
    assert majority_vote(counts_of(3, 3, 5, 12), 6)[0] == 3


def test_majority_tie_takes_original_label_even_outside_the_tie():
    # 2 votes LCZ 3, 2 votes LCZ 5: tie -> original label, here 6 (neither tied class)
    assert majority_vote(counts_of(3, 3, 5, 5), 6)[0] == 6
    assert majority_vote(counts_of(3, 3, 5, 5), 5)[0] == 5


def test_majority_addon_tie_takes_lcz7():
    c = np.vstack([counts_of(1, 1, 4, 4), counts_of(2, 2, 2, 8)])
    assert majority_vote(c, 7).tolist() == [7, 2]


def test_majority_no_vote_takes_tie_label():
    assert majority_vote(np.zeros((2, 17), dtype=np.int64), np.array([12, 4])).tolist() == [12, 4]


def test_majority_per_row_tie_labels():
    c = np.vstack([counts_of(1, 2), counts_of(9, 9), counts_of(14, 15)])
    assert majority_vote(c, np.array([2, 3, 16])).tolist() == [2, 9, 16]


def authors_majority_loop(vote_row: np.ndarray, tie: int) -> int:
    """Independent re-statement of the authors' to_one_hot_majority for one row (plain Python)."""
    counts = [0] * 17
    for v in vote_row:
        if v > 0:
            counts[v - 1] += 1
    top = max(counts)
    winners = [i for i, c in enumerate(counts) if c == top]
    return winners[0] + 1 if len(winners) == 1 else tie


def test_majority_matches_loop_version_on_random_votes_with_many_ties():
    rng = np.random.default_rng(3)
    votes = rng.integers(0, 18, size=(3000, 4))          # 4 votes: ties are frequent
    votes[:50] = 0                                        # rows without any vote
    original = rng.integers(1, 18, size=3000)
    expected = [authors_majority_loop(v, int(o)) for v, o in zip(votes, original, strict=True)]
    got = majority_vote(vote_counts(votes), original)
    assert got.tolist() == expected
    assert (got == original).sum() > 300                  # the tie path was exercised


# ------------------------------------------------------------------------------------ distribution
def test_urban_distribution_drops_non_urban_votes():
    d = urban_distribution(counts_of(2, 2, 2, 5, 12, 12, 17))
    expected = np.zeros(10)
    expected[1], expected[4] = 0.75, 0.25
    np.testing.assert_allclose(d[0], expected, rtol=0, atol=1e-15)


def test_urban_distribution_row_without_urban_votes_is_zero_not_nan():
    c = np.vstack([counts_of(11, 12, 12), counts_of(1)])
    d = urban_distribution(c)
    assert np.isfinite(d).all() and d[0].sum() == 0 and d[1, 0] == 1
    assert has_urban_votes(c).tolist() == [False, True]
    assert np.isfinite(urban_distribution(c, smoothing=0.08)).all()


def test_smoothing_is_applied_as_written_and_does_not_sum_to_one():
    # counts c = (3, 1, 0, ...), n = 4 urban votes, a = 0.08: (c + a) / (n (1 + a))
    d = urban_distribution(counts_of(1, 1, 1, 2, 13), smoothing=0.08)[0]
    assert d[0] == pytest.approx(3.08 / 4.32)
    assert d[1] == pytest.approx(1.08 / 4.32)
    assert d[5] == pytest.approx(0.08 / 4.32)
    assert d.sum() == pytest.approx((4 + 0.8) / 4.32)         # 1.111..., not 1
    # with n = 10 the formula does sum to one
    ten = urban_distribution(counts_of(*([1] * 6 + [2] * 4)), smoothing=0.08)[0]
    assert ten.sum() == pytest.approx(1.0)


def test_smoothing_renormalised_is_laplace():
    d = urban_distribution(counts_of(1, 1, 1, 2), smoothing=0.08, renormalise=True)[0]
    assert d[0] == pytest.approx(3.08 / 4.8) and d[9] == pytest.approx(0.08 / 4.8)
    assert d.sum() == pytest.approx(1.0)


def test_negative_smoothing_rejected():
    with pytest.raises(ValueError):
        urban_distribution(counts_of(1), smoothing=-0.1)


# ----------------------------------------------------------------------------------------- entropy
def test_vote_entropy_hand_values():
    d = np.array([
        [1.0] + [0.0] * 9,
        [0.5, 0.5] + [0.0] * 8,
        [0.75, 0.25] + [0.0] * 8,
        [0.1] * 10,
        [0.0] * 10,
    ])
    h = entropy_nats(d)
    assert h[0] == 0.0
    assert h[1] == pytest.approx(math.log(2))
    assert h[2] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert h[2] == pytest.approx(0.5623351446188083)
    assert h[3] == pytest.approx(math.log(10))
    assert h[4] == 0.0 and np.isfinite(h).all()


# ------------------------------------------------------------------------------------ build_labels
# ------------------------------------------------------------------ counts of the vote figures
def test_vote_entropy_over_all_17_lcz_by_hand():
    votes = np.array([[2] * 11, [2] * 6 + [5] * 5, [14] * 5 + [11] * 4 + [0, 0], [0] * 11])
    h = vote_entropy_all_lcz(vote_counts(votes))
    np.testing.assert_allclose(h, [0, -(6 / 11 * np.log(6 / 11) + 5 / 11 * np.log(5 / 11)),
                                   -(5 / 9 * np.log(5 / 9) + 4 / 9 * np.log(4 / 9)), 0], rtol=1e-12)


def test_voting_counts_by_hand():
    # original LCZ 1: votes 1, 1, 2 (0 and the non-urban 14 not counted); original 3: 3, 3, 3, 7;
    # original 12 (non-urban) is not a row of the matrix
    votes = np.array([[1, 1, 2, 0, 14], [3, 3, 3, 7, 0], [1, 1, 1, 1, 1]])
    m = voting_counts(votes, np.array([1, 3, 12]))
    want = np.zeros((10, 10), dtype=np.int64)
    want[0, 0], want[0, 1], want[2, 2], want[2, 6] = 2, 1, 3, 1
    np.testing.assert_array_equal(m, want)
    assert m.dtype == np.int64
    with pytest.raises(ValueError):
        voting_counts(votes, np.array([1, 3]))


def test_release_vote_counts_by_hand():
    votes = np.array([
        [1] * 11,                          # urban, entropy 0 -> bin 0
        [2] * 6 + [14] * 5,                # urban majority 2, entropy ln 2 of 6/11, 5/11 = 0.689 -> bin 2
        [12] * 11,                         # non-urban, entropy 0 -> bin 0
        [12, 12, 13, 13] + [0] * 7,        # tie 12/13 -> original 6: urban, entropy ln 2 = 0.693 -> bin 2
        [0] * 11,                          # no vote: left out of the bins
        [15, 15, 15, 1] + [0] * 7,         # non-urban, entropy of 3/4, 1/4 = 0.562 -> bin 2
    ])
    original = np.array([1, 2, 12, 6, 4, 15])
    majority = np.array([1, 2, 12, 6, 4, 15])   # after the tie rule (row 3: original; row 4: original)
    got = release_vote_counts(votes, majority, original)
    assert got["rows"] == 6 and got["rows_without_votes"] == 1
    assert got["entropy_bins"] == {"urban": [1, 0, 2, 0, 0, 0], "non_urban": [1, 0, 1, 0, 0, 0]}
    want = np.zeros((10, 10), dtype=np.int64)
    want[0, 0] = 11                        # row 0: original 1, eleven votes for 1
    want[1, 1] = 6                         # row 1: original 2, six votes for 2 (14 not urban)
    np.testing.assert_array_equal(got["voting_counts"], want)
    assert isinstance(got["voting_counts"][0][0], int)      # JSON-ready


def test_build_labels_cities():
    votes = np.array([
        [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],     # unanimous LCZ 2
        [3, 3, 3, 7, 7, 7, 12, 0, 0, 0, 0],    # tie 3/7 -> original 7
        [11, 11, 11, 11, 11, 11, 1, 1, 0, 0, 0],  # non-urban majority
        [11, 11, 12, 12, 0, 0, 0, 0, 0, 0, 0],  # tie 11/12 -> original 6, but no urban vote
        [0] * 11,                                # no vote -> original 4, no urban vote
        [5, 5, 5, 4, 4, 17, 17, 17, 17, 0, 0],  # majority 17 -> dropped non-urban
        [1, 4, 4, 4, 4, 4, 4, 4, 4, 1, 1],      # majority 4
    ])
    original = np.array([9, 7, 1, 6, 4, 5, 1])
    lab = build_labels(votes, original)
    assert lab.keep.tolist() == [True, True, False, False, False, False, True]
    assert lab.majority.tolist() == [2, 7, 11, 6, 4, 17, 4]
    assert lab.label.tolist() == [1, 6, -1, -1, -1, -1, 3]
    assert lab.dropped == {"non_urban_majority": 2, "no_urban_votes": 2}
    assert lab.drop_reason.tolist() == ["", "", "non_urban_majority", "no_urban_votes",
                                        "no_urban_votes", "non_urban_majority", ""]
    np.testing.assert_allclose(lab.distribution[1][[2, 6]], [0.5, 0.5])
    assert lab.distribution.dtype == np.float32 and lab.entropy.dtype == np.float32
    assert lab.entropy[0] == 0 and lab.entropy[1] == pytest.approx(math.log(2), rel=1e-6)
    assert lab.entropy[6] == pytest.approx(-(3 / 11 * math.log(3 / 11) + 8 / 11 * math.log(8 / 11)), rel=1e-6)
    assert np.isfinite(lab.distribution).all() and np.isfinite(lab.entropy).all()
    assert lab.votes.dtype == np.int8 and lab.votes.shape == (7, 11)
    assert (lab.votes == votes).all()
    assert lab.original.dtype == np.int8 and lab.original.tolist() == original.tolist()


def test_build_labels_addon_pads_votes_and_ties_to_7():
    votes = np.array([[1, 1, 4, 4, 0, 0, 0, 0, 0], [6, 6, 6, 7, 0, 0, 0, 0, 0]])
    lab = build_labels(votes, 7)
    assert lab.majority.tolist() == [7, 6]
    assert lab.keep.tolist() == [True, True]
    assert lab.votes.shape == (2, 11) and (lab.votes[:, 9:] == 0).all()
    assert lab.original.tolist() == [7, 7]
    # tie resolved to 7 although nobody voted 7: kept, distribution over the urban votes
    np.testing.assert_allclose(lab.distribution[0][[0, 3]], [0.5, 0.5])


def test_build_labels_smoothing_keeps_entropy_of_raw_distribution():
    votes = np.array([[1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0]])
    raw = build_labels(votes, 1)
    sm = build_labels(votes, 1, smoothing=0.08)
    assert sm.distribution[0, 0] == pytest.approx(3.08 / 4.32, rel=1e-6)
    assert sm.entropy[0] == raw.entropy[0]


def test_build_labels_errors():
    with pytest.raises(DataError, match="f.h5.*0..17"):
        build_labels(np.array([[1, 19]]), 1, where="f.h5")
    with pytest.raises(DataError, match="at most 11"):
        build_labels(np.ones((2, 12), dtype=int), 1)
    with pytest.raises(DataError, match="do not match"):
        build_labels(np.ones((2, 3), dtype=int), np.array([1, 2, 3]))


# ------------------------------------------------------------------------------------ targets
def test_one_hot_and_label_smoothing():
    y = one_hot(np.array([0, 9]))
    assert y.shape == (2, 10) and y[0, 0] == 1 and y[1, 9] == 1 and y.sum() == 2
    s = smooth_one_hot(np.array([3]), eps=0.1)
    assert s[0, 3] == pytest.approx(0.91) and s[0, 0] == pytest.approx(0.01) and s.sum() == pytest.approx(1)
    with pytest.raises(ValueError):
        one_hot(np.array([10]))


def test_smooth_one_hot_compat_17_reproduces_the_seed_quirk():
    s = smooth_one_hot(np.array([2, 5]), eps=0.1, compat_17=True)
    assert s.shape == (2, 10)
    assert s[0, 2] == pytest.approx(0.9 + 0.1 / 17)
    assert s[0, 0] == pytest.approx(0.1 / 17)
    assert s.sum(axis=1) == pytest.approx(np.full(2, 1 - 0.1 + 10 * 0.1 / 17))   # 0.9588
    assert s.sum(axis=1)[0] == pytest.approx(0.9588, abs=1e-4)


def test_smooth_distribution():
    d = np.array([[0.5, 0.5] + [0.0] * 8])
    s = smooth_distribution(d, eps=0.1)
    assert s[0, 0] == pytest.approx(0.46) and s[0, 9] == pytest.approx(0.01) and s.sum() == pytest.approx(1)


# --------------------------------------------------------------------------- real data cross-check
@pytest.fixture(scope="module")
def real(real_reference, shared_file):
    with h5py.File(real_reference, "r") as f:
        d = f["test_label_distributions"][()]
    with h5py.File(shared_file("data/votes/entropies_test.h5"), "r") as f:
        e = f["entropies_test"][()]
    return d, e


def test_real_entropies_equal_ours(real):
    d, e = real
    assert d.shape == (40885, 10) and e.shape == (40885,)
    nan_rows = ~np.isfinite(d).all(axis=1)
    assert nan_rows.sum() == 17
    assert np.isnan(e[nan_rows]).all() and np.isfinite(e[~nan_rows]).all()
    ours = entropy_nats(d[~nan_rows])
    # the stored entropies are float32 (torch Categorical): compare at float32 precision
    np.testing.assert_allclose(ours, e[~nan_rows].astype(np.float64), rtol=0, atol=1e-6)
    assert ours.mean() == pytest.approx(0.325, abs=5e-4)
    assert (ours < 1e-12).mean() == pytest.approx(0.372, abs=5e-4)


def test_real_distributions_are_urban_vote_shares_and_nan_rows_are_what_we_drop(real):
    d, _ = real
    nan_rows = ~np.isfinite(d).all(axis=1)
    # every finite row is counts / n with n <= 11 urban votes: rebuild the counts
    dd = d[~nan_rows]
    counts = np.full(dd.shape, -1, dtype=np.int64)
    for n in range(11, 0, -1):       # loop over the 11 possible vote totals, not rows
        c = np.round(dd * n)
        ok = (np.abs(dd * n - c) < 1e-9).all(axis=1) & (c.sum(axis=1) == n)
        counts[ok] = c[ok]
    assert (counts >= 0).all(), "a real row is not k/n with n <= 11 votes"
    full = np.zeros((len(dd), 17), dtype=np.int64)
    full[:, :10] = counts
    np.testing.assert_allclose(urban_distribution(full), dd, rtol=0, atol=1e-12)
    # the 17 NaN rows are rows without urban votes: our rule drops them and says why
    votes_nan = np.tile(np.array([11, 11, 12, 12, 0, 0, 0, 0, 0, 0, 0]), (int(nan_rows.sum()), 1))
    lab = build_labels(votes_nan, 6)
    assert not lab.keep.any() and lab.dropped["no_urban_votes"] == 17
    assert np.isfinite(lab.distribution).all()
