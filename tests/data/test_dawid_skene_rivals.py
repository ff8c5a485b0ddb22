"""Dawid-Skene multi-start: best likelihood kept, near-equal rival optima reported (votes built to
have a mirror-image optimum), the likelihood by hand. (The small twin's LCZ 3 / LCZ 7 swap:
test_synth, beside the twin's other statistics.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.data.dawid_skene import (
    compare_solutions,
    fit_dawid_skene,
    fit_dawid_skene_multistart,
    log_likelihood,
)

A, B = 3, 7                      # LCZ ids of the ambiguous pair


def mirror_votes(n_a: int = 40, n_b: int = 40, m: int = 30) -> np.ndarray:
    """n_a rows all LCZ 3, n_b rows all LCZ 7, and m identical rows where experts 0-4 say 3,
    experts 5-9 say 7 and expert 10 abstains. With n_a = n_b the votes are invariant under
    (swap 3 <-> 7, swap experts 0-4 <-> 5-9), so "mixed rows are 3" and "mixed rows are 7" are
    mirror-image optima with exactly equal likelihood."""
    mixed = np.array([A] * 5 + [B] * 5 + [0])
    return np.concatenate([np.full((n_a, 11), A), np.full((n_b, 11), B), np.tile(mixed, (m, 1))])


def starts_for(votes: np.ndarray, n_a: int, n_b: int) -> dict[str, np.ndarray]:
    base = np.zeros((len(votes), 2))
    base[:n_a, 0] = 1
    base[n_a:n_a + n_b, 1] = 1
    to_a, to_b = base.copy(), base.copy()
    to_a[n_a + n_b:, 0] = 1
    to_b[n_a + n_b:, 1] = 1
    return {"mixed_is_3": to_a, "mixed_is_7": to_b}


def test_mirror_optima_are_reported_as_a_swap():
    votes = mirror_votes()
    res = fit_dawid_skene_multistart(votes, classes=[A, B], starts=starts_for(votes, 40, 40), n_random=0)
    lls = {s["start"]: s["log_likelihood"] for s in res.starts}
    assert lls["mixed_is_3"] == pytest.approx(lls["mixed_is_7"], abs=1e-8)
    # majority / counts starts split the tied mixed rows 50/50: the symmetric saddle, far worse
    assert lls["majority"] < lls["mixed_is_3"] - 10
    assert res.best_start in ("mixed_is_3", "mixed_is_7")
    rival = res.rival
    assert rival is not None and rival["substantial"]
    assert {rival["start"], rival["best_start"]} == {"mixed_is_3", "mixed_is_7"}
    assert rival["log_likelihood_gap"] == pytest.approx(0.0, abs=1e-8)
    assert rival["rows_changed"] == 30
    # class 3: 40 pure + 30 mixed rows assigned by either solution, 30 of them move: 3/7
    assert rival["class_share"]["3"] == pytest.approx(30 / 70)
    assert rival["class_share"]["7"] == pytest.approx(30 / 70)
    assert rival["swaps"][0]["lcz"] == [3, 7]
    assert sorted([rival["swaps"][0]["a_to_b"], rival["swaps"][0]["b_to_a"]]) == [0, 30]
    assert rival["summary"] in ("LCZ 3 -> LCZ 7 (30 rows)", "LCZ 3 <- LCZ 7 (30 rows)")
    assert res.best.log_likelihood == max(lls.values())


def test_rival_beyond_the_margin_is_not_reported():
    # 10 more pure-3 rows break the mirror: "mixed are 3" now wins by a clear margin
    votes = mirror_votes(n_a=50)
    starts = starts_for(votes, 50, 40)
    res = fit_dawid_skene_multistart(votes, classes=[A, B], starts=starts, n_random=0, margin=1e-6)
    lls = {s["start"]: s["log_likelihood"] for s in res.starts}
    gap = abs(lls["mixed_is_3"] - lls["mixed_is_7"])
    assert gap > 1e-3 and res.rival is None
    wide = fit_dawid_skene_multistart(votes, classes=[A, B], starts=starts, n_random=0, margin=gap + 1)
    assert wide.rival is not None and wide.rival["log_likelihood_gap"] == pytest.approx(gap)


def test_no_rival_on_clear_votes():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 11, 400)
    votes = np.where(rng.random((400, 11)) < 0.9, truth[:, None], rng.integers(1, 11, (400, 11)))
    res = fit_dawid_skene_multistart(votes, 10)
    assert res.rival is None
    assert [s["start"] for s in res.starts] == ["majority", "counts", "random0", "random1", "random2"]
    again = fit_dawid_skene_multistart(votes, 10)              # deterministic for a seed
    assert [s["log_likelihood"] for s in again.starts] == [s["log_likelihood"] for s in res.starts]


def test_compare_solutions_by_hand():
    eye = np.eye(4)
    best = eye[[0, 0, 1, 1, 2, 2, 2, 3]]
    other = eye[[0, 1, 0, 1, 3, 3, 2, 3]]        # 0->1 once, 1->0 once, 2->3 twice
    cmp = compare_solutions(best, other, classes=[1, 2, 3, 4], min_class_share=0.5, min_rows=4)
    assert cmp["rows_changed"] == 4 and cmp["share_of_rows"] == 0.5
    assert cmp["class_moved"] == {"1": 2, "2": 2, "3": 2, "4": 2}
    # class 3 (index 2): rows 4-6 in best, row 6 in other -> union 3 rows, 2 move
    assert cmp["class_share"]["3"] == pytest.approx(2 / 3)
    assert cmp["class_share"]["4"] == pytest.approx(2 / 3)     # rows 4, 5, 7: 2 of 3 move
    assert cmp["class_share"]["1"] == pytest.approx(2 / 3)     # rows 0, 1, 2
    assert cmp["swaps"] == [{"lcz": [1, 2], "a_to_b": 1, "b_to_a": 1},
                            {"lcz": [3, 4], "a_to_b": 2, "b_to_a": 0}]
    assert cmp["summary"] == "LCZ 1 <-> LCZ 2 (2 rows); LCZ 3 -> LCZ 4 (2 rows)"
    assert cmp["substantial"]
    assert not compare_solutions(best, other, min_rows=5)["substantial"]
    assert not compare_solutions(best, best)["substantial"]


def test_log_likelihood_by_hand():
    conf = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.3], [0.4, 0.6]]])   # [expert, true, vote]
    priors = np.array([0.6, 0.4])
    votes = np.array([[1, 2], [2, 0], [0, 13]])
    # row 0: 0.6*0.9*0.3 + 0.4*0.2*0.6 = 0.21; row 1: 0.6*0.1 + 0.4*0.8 = 0.38; row 2: no vote -> 1
    assert log_likelihood(votes, conf, priors) == pytest.approx(math.log(0.21) + math.log(0.38))


def test_log_likelihood_matches_the_fit():
    rng = np.random.default_rng(2)
    votes = rng.integers(0, 6, (300, 7))
    res = fit_dawid_skene(votes, 5)
    assert log_likelihood(votes, res.confusion, res.priors) == pytest.approx(res.log_likelihood, rel=1e-12)
