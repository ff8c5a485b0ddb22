"""crowd-kit aggregators as soft targets: row / class mapping, Wawa by hand, our EM drivers equal
crowd-kit's own fit at a fixed iteration count, convergence, agreement of crowd-kit's Dawid-Skene
with the project's, and the target report by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.data.aggregation import aggregate, frame_to_posteriors, target_report, votes_frame
from lczldl.data.dawid_skene import fit_dawid_skene

pd = pytest.importorskip("pandas")
crowdkit = pytest.importorskip("crowdkit.aggregation")
# crowd-kit 1.4.2 warns on nearly every pandas call under pandas 3
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def random_votes(n: int, e: int, k: int, seed: int, diag: float = 0.75, missing: float = 0.2) -> np.ndarray:
    """(n, e) votes LCZ 1..k: each expert right with prob ``diag`` else a uniform other class;
    some missing (0) and some non-urban (13) votes that must be ignored."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, k + 1, n)
    wrong = (truth[:, None] - 1 + rng.integers(1, k, (n, e))) % k + 1
    v = np.where(rng.random((n, e)) < diag, truth[:, None], wrong)
    v[rng.random((n, e)) < missing] = 0
    v[rng.random((n, e)) < 0.05] = 13
    return v


def test_votes_frame_keeps_in_class_votes_row_major():
    df = votes_frame(np.array([[3, 0, 12], [7, 7, 3]]), classes=range(1, 11))
    assert df.to_numpy().tolist() == [[0, 0, 3], [1, 0, 7], [1, 1, 7], [1, 2, 3]]


def test_frame_to_posteriors_maps_rows_and_classes():
    # crowd-kit order: tasks and labels in order of appearance, a class (2) and a row (1) absent
    probas = pd.DataFrame([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]], index=[2, 0], columns=[3, 1, 4])
    p = frame_to_posteriors(probas, 3, classes=[1, 2, 3, 4])
    np.testing.assert_allclose(p, [[0.2, 0.0, 0.1, 0.7], [0.25, 0.25, 0.25, 0.25], [0.5, 0.0, 0.5, 0.0]])


def test_wawa_by_hand():
    # majority labels 1, 2, 1, 3; skills: expert 0 agrees 4/4, expert 1 2/4, expert 2 3/4
    votes = np.array([[1, 1, 2], [2, 2, 2], [1, 2, 1], [3, 1, 3], [0, 12, 0]])
    res = aggregate(votes, "wawa", num_classes=4)
    expected = np.array([[1.5, 0.75, 0, 0], [0, 2.25, 0, 0], [1.75, 0.5, 0, 0], [0.5, 0, 1.75, 0],
                         [0.5625] * 4]) / 2.25
    np.testing.assert_allclose(res.posteriors, expected, atol=1e-6)
    assert res.posteriors.dtype == np.float32
    assert res.info["skills"] == {0: 1.0, 1: 0.5, 2: 0.75}
    assert res.info["rows_without_votes"] == 1 and res.info["n_annotations"] == 12


def crowdkit_fit(method: str, df, n_iter: int):
    if method == "crowdkit_ds":
        return crowdkit.DawidSkene(n_iter=n_iter, tol=-np.inf).fit(df).probas_
    if method == "one_coin":
        return crowdkit.OneCoinDawidSkene(n_iter=n_iter, tol=-np.inf).fit(df).probas_
    if method == "mace":
        return crowdkit.MACE(n_restarts=1, n_iter=n_iter, random_state=0).fit(df).probas_
    return crowdkit.GLAD(n_iter=n_iter + 1, tol=-np.inf).fit(df).probas_   # see aggregation._glad


@pytest.mark.parametrize("method,n_iter,rows", [("crowdkit_ds", 6, 80), ("one_coin", 5, 80),
                                                ("mace", 5, 80), ("glad", 2, 25)])
def test_our_drivers_equal_crowdkit_fit(method, n_iter, rows):
    """Guard on the private crowd-kit steps we drive: same posteriors as crowd-kit's public fit."""
    votes = random_votes(rows, 5, 4, seed=3)
    ours = aggregate(votes, method, num_classes=4, max_iter=n_iter, tol=-1.0)   # never stops early
    assert ours.info["iterations"] == n_iter and not ours.info["converged"]
    ref = frame_to_posteriors(crowdkit_fit(method, votes_frame(votes, range(1, 5)), n_iter), rows, range(1, 5))
    np.testing.assert_allclose(ours.posteriors, ref, atol=1e-6)


@pytest.mark.parametrize("method", ["one_coin", "mace", "crowdkit_ds"])
def test_converged_posteriors_are_a_fixed_point(method):
    votes = random_votes(150, 6, 4, seed=4)
    res = aggregate(votes, method, num_classes=4, tol=1e-7)
    assert res.info["converged"] and 1 <= res.info["iterations"] < res.info["max_iter"]
    more = aggregate(votes, method, num_classes=4, max_iter=res.info["iterations"] + 3, tol=-1.0)
    assert np.abs(more.posteriors - res.posteriors).max() < 1e-5
    np.testing.assert_allclose(res.posteriors.sum(axis=1), 1.0, atol=1e-6)


def test_class_without_votes_gets_zero_and_majority_class_wins():
    votes = random_votes(120, 6, 3, seed=5)                 # LCZ 1..3 only; class 4 never voted
    votes[0] = [2, 2, 2, 2, 2, 2]
    for method in ("one_coin", "mace", "wawa"):
        p = aggregate(votes, method, num_classes=4).posteriors
        assert (p[:, 3] == 0).all(), method
        assert p[0].argmax() == 1, method                   # unanimous LCZ 2 -> column 1


def test_crowdkit_dawid_skene_agrees_with_the_projects():
    """Independent implementations of the same model (PROTOCOL: mean TV 0.003 on simulated votes)."""
    votes = random_votes(1000, 11, 10, seed=6, diag=0.7, missing=0.4)
    ck = aggregate(votes, "crowdkit_ds", tol=1e-7)
    ours = fit_dawid_skene(votes, 10, init="counts", smoothing=1e-6, tol=1e-10, max_iter=500)
    assert ck.info["converged"]
    tv = 0.5 * np.abs(ck.posteriors - ours.posteriors).sum(axis=1)
    assert tv.mean() < 0.005
    assert (ck.posteriors.argmax(1) == ours.posteriors.argmax(1)).mean() > 0.995
    # same parameters -> the same observed-data likelihood (ours is computed independently)
    assert ck.info["log_likelihood"] == pytest.approx(ours.log_likelihood, abs=0.5)


def test_unknown_method_and_bad_shape():
    with pytest.raises(ValueError, match="unknown aggregator"):
        aggregate(np.ones((2, 3), dtype=int), "bogus")
    with pytest.raises(ValueError, match="votes"):
        aggregate(np.ones(3, dtype=int), "wawa")


def test_target_report_by_hand():
    dist = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    targets = {"same": dist, "onehot": np.array([[1.0, 0, 0], [1.0, 0, 0]]),
               "soft": np.array([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]])}
    rep = target_report(targets, dist, labels=np.array([1, 0]))
    assert rep["same"]["kl"] == pytest.approx(0.0, abs=1e-12) and rep["same"]["tv"] == 0.0
    # one-hot on row 0 misses half the votes: 0.5 log(0.5 / 1) + 0.5 log(0.5 / 1e-12); row 1 exact
    assert rep["onehot"]["kl"] == pytest.approx((math.log(0.5) - 0.5 * math.log(1e-12)) / 2)
    assert rep["onehot"]["tv"] == pytest.approx((0.5 + 0.0) / 2)
    # soft: row 0 KL = 0.5 log 2 + 0.5 log 1 = 0.3466; row 1 KL = log 2; TV 0.25 and 0.5
    assert rep["soft"]["kl"] == pytest.approx((0.5 * math.log(2) + math.log(2)) / 2)
    assert rep["soft"]["tv"] == pytest.approx(0.375)
    assert rep["soft"]["entropy"] == pytest.approx(1.5 * math.log(2))   # both rows: 1/2, 1/4, 1/4
    assert rep["soft"]["entropy_histogram"] == [0, 0, 0, 0, 2, 0]    # 1.04 in [1.0, 1.3)
    assert rep["same"]["entropy_histogram"] == [1, 0, 1, 0, 0, 0]      # 0 and log 2 = 0.69
    assert rep["onehot"]["argmax_agreement"] == 0.5 and rep["soft"]["argmax_agreement"] == 1.0
