"""The beyond-the-paper record of one prediction: its headline keys are the registry's, its values
those of the conformal / selective functions it wires (by hand for LAC), under bootstrap counts it
equals the record of the explicit resample (q_hat fixed), and the details hold what the figures read."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from lczldl.evaluation import registry as G
from lczldl.evaluation.beyond import CURVE_POINTS, VOTE_DRAW_SEED, VoteSettings, evaluate_prediction, headline
from lczldl.evaluation.conformal import conditional_set_metrics, conformal_metrics, set_metrics
from lczldl.evaluation.conformal_votes import vote_conformal
from lczldl.evaluation.intervals import bootstrap_counts, bootstrap_indices
from lczldl.evaluation.selective import selective_metrics


def case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    c = rng.multinomial(11, rng.dirichlet(np.full(10, 0.3), n))
    d = c / c.sum(1, keepdims=True)
    z = rng.normal(size=(n, 10)) + 2.0 * np.log(d + 0.02)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    votes = np.zeros((n, 11), dtype=np.int8)
    for i in range(n):
        v = np.repeat(np.arange(1, 11), c[i])
        votes[i, :len(v)] = v
    ent = -(np.where(d > 0, d * np.log(np.where(d > 0, d, 1)), 0)).sum(1)
    return p, d.argmax(1), votes, ent


def test_headline_keys_and_values_are_the_wired_functions():
    p, y, votes, ent = case(300, 0)
    pv, yv, _, _ = case(250, 1)
    mi = np.random.default_rng(2).uniform(0, 0.3, 300)
    head, detail, sets, signals, vote_sets = evaluate_prediction(p, y, votes, ent, cal_probs=pv, cal_labels=yv,
                                                                 mutual_info=mi)
    assert vote_sets is None and "vote_sets" not in detail           # no validation votes given
    conditional = {G.conformal_key(sc, lv, st) for sc in G.SCORE_LABELS for lv in (0.9, 0.95)
                   for st in G.CONDITIONAL_STATS}
    want = set(G.keys(G.CONFORMAL)) | conditional | set(G.keys(G.SELECTIVE)) | {
        "auroc_max_prob", "auroc_entropy", "auroc_mutual_info", "spearman_max_prob", "spearman_mutual_info"}
    assert set(head) == want                             # entropy's Spearman is entropy_spearman
    ref = conformal_metrics(pv, yv, p, y, votes)
    for name, m in ref.items():
        for stat in G.CONFORMAL_STATS:
            assert head[f"{name}_{stat}"] == m[stat], (name, stat)
        assert detail["sets"][name]["qhat"] == m["qhat"]
        lv = detail["sets"][name]["level"]
        cond = conditional_set_metrics(sets[detail["sets"][name]["score"], lv][0], y, votes, lv)
        for stat in G.CONDITIONAL_STATS:
            assert head[f"{name}_{stat}"] == cond[stat], (name, stat)
        assert detail["sets"][name]["vote_coverage_ebin2"] == cond["vote_coverage_ebin2"]
    assert {k: head[k] for k in G.keys(G.SELECTIVE)} == selective_metrics(p, y)
    # LAC at 90 % by hand: q = the ceil(251 * 0.9) = 226th smallest validation score
    q = np.sort(1 - pv[np.arange(250), yv])[225]
    assert head["lac_90_set_size"] == pytest.approx(((1 - p) <= q).sum(1).mean(), abs=1e-12)
    assert detail["counts"]["class"] == np.bincount(y, minlength=10).tolist()
    assert sum(detail["counts"]["ebin"]) == 300
    cov, risk = detail["risk_coverage"]["coverage"], detail["risk_coverage"]["risk"]
    assert len(cov) == CURVE_POINTS and cov[0] == pytest.approx(1 / 300) and cov[-1] == 1.0
    assert risk[-1] == pytest.approx((p.argmax(1) != y).mean())
    assert set(signals) == {"max_prob", "entropy", "mutual_info"} and set(detail["signals"]) == set(signals)


def test_switches_and_missing_calibration():
    p, y, votes, ent = case(80, 3)
    head, detail, sets, _, _ = evaluate_prediction(p, y, votes, ent, cal_probs=None, cal_labels=None)
    assert sets is None and "sets" not in detail and set(head) >= set(G.keys(G.SELECTIVE))
    assert not any(k.startswith("lac_") for k in head)
    head, detail, _, signals, _ = evaluate_prediction(p, y, votes, ent, cal_probs=p, cal_labels=y, selective=False,
                                                      levels=(0.8,))
    assert signals is None and "aurc" not in head and "risk_coverage" not in detail
    assert set(head) == {f"{s}_80_{stat}" for s in ("lac", "aps", "raps")
                         for stat in (*G.CONFORMAL_STATS, *G.CONDITIONAL_STATS)}
    vote = VoteSettings(m=3, variant="average")
    head, detail, _, _, vote_sets = evaluate_prediction(p, y, votes, ent, cal_probs=p, cal_labels=y, cal_votes=votes,
                                                        vote=vote, conformal=False)
    assert vote_sets is None and not any(k.startswith("votecal_") for k in head)   # conformal off: neither kind


def test_members_give_the_disagreement_signal():
    p, y, votes, ent = case(60, 4)
    q = np.roll(p, 1, axis=1)
    head, _, _, signals, _ = evaluate_prediction((p + q) / 2, y, votes, ent, conformal=False, members=[p, q])
    assert "auroc_disagreement" in head and "spearman_disagreement" in head
    h = lambda a: -(a * np.log(a)).sum(1)                                  # noqa: E731
    np.testing.assert_allclose(signals["disagreement"], h((p + q) / 2) - (h(p) + h(q)) / 2, atol=1e-12)


def test_weighted_headline_equals_the_explicit_resample():
    p, y, votes, ent = case(200, 5)
    pv, yv, votes_v, _ = case(150, 6)
    _, _, sets, signals, vote_sets = evaluate_prediction(p, y, votes, ent, cal_probs=pv, cal_labels=yv,
                                                         mutual_info=np.linspace(0, 1, 200), cal_votes=votes_v,
                                                         vote=VoteSettings(m=5, variant="ecdf"))
    idx, w = bootstrap_indices(200, 6, seed=9), bootstrap_counts(200, 6, seed=9)
    hw = headline(p, y, votes, ent, sets=sets, signals=signals, weights=w, vote_sets=vote_sets)
    assert any(k.startswith("votecal_") for k in hw)
    for b in range(6):
        i = idx[b]
        ref = headline(p[i], y[i], votes[i], ent[i], sets={k: (s[i], q) for k, (s, q) in sets.items()},
                       signals={k: v[i] for k, v in signals.items()},
                       vote_sets={k: replace(v, sets=v.sets[i]) for k, v in vote_sets.items()})
        for key, v in ref.items():
            if math.isnan(v):
                assert math.isnan(hw[key][b]), key
            else:
                assert hw[key][b] == pytest.approx(v, rel=1e-10, abs=1e-12), key


def test_sets_calibrated_on_the_votes_are_vote_conformal_judged_like_the_standard_sets():
    """With validation votes every score x level gets the Monte Carlo conformal set of those votes
    (the wired function, seed VOTE_DRAW_SEED), its headline numbers are set_metrics +
    conditional_set_metrics of that set, and the detail records how it was calibrated."""
    p, y, votes, ent = case(300, 10)
    pv, yv, votes_v, _ = case(240, 11)
    votes_v[:7] = 0                                         # validation images without any vote
    vote = VoteSettings(m=4, variant="ecdf")
    head, detail, sets, _, vote_sets = evaluate_prediction(p, y, votes, ent, cal_probs=pv, cal_labels=yv,
                                                           cal_votes=votes_v, vote=vote, selective=False)
    assert set(vote_sets) == set(sets)
    for (score, lv), vs in vote_sets.items():
        ref = vote_conformal(pv, votes_v, p, score=score, level=lv, m=4, variant="ecdf", seed=VOTE_DRAW_SEED)
        np.testing.assert_array_equal(vs.sets, ref.sets)
        assert vs.qhat == ref.qhat and vs.n_no_urban == 7
        want = {**set_metrics(ref.sets, y, votes), **conditional_set_metrics(ref.sets, y, votes, lv)}
        name = G.vote_set_name(score, lv)
        for stat in G.VOTE_SET_STATS:
            assert head[G.vote_conformal_key(score, lv, stat)] == want[stat], (name, stat)
        d = detail["vote_sets"][name]
        assert (d["variant"], d["m"], d["seed"], d["n_no_urban"], d["qhat"]) == ("ecdf", 4, VOTE_DRAW_SEED, 7, ref.qhat)
        assert d["n_cal"] + d["n_ecdf"] == 240 - 7
        assert d["vote_coverage_ebin0"] == want["vote_coverage_ebin0"] and d["set_size_ebin5"] == want["set_size_ebin5"]
    # the vote-calibrated 90 % sets cover about 90 % of the test votes; by hand for LAC:
    s = vote_sets["lac", 0.9].sets
    c = np.stack([np.bincount(r[(r >= 1) & (r <= 10)] - 1, minlength=10) for r in votes.astype(np.int64)])
    share = (c * s).sum(1) / c.sum(1)
    assert head["votecal_lac_90_vote_coverage"] == pytest.approx(share.mean(), abs=1e-12)


def test_without_votes_the_label_numbers_only():
    """A store without votes (So2Sat LCZ42): CovGap and SSCV against the label are those of the
    prediction with votes (they never read them), the vote numbers and the vote-calibrated sets are
    left out."""
    p, y, votes, ent = case(200, 12)
    pv, yv, votes_v, _ = case(150, 13)
    vote = VoteSettings(m=2, variant="average")
    with_votes, *_ = evaluate_prediction(p, y, votes, ent, cal_probs=pv, cal_labels=yv, cal_votes=votes_v, vote=vote,
                                         selective=False)
    head, detail, _, _, vote_sets = evaluate_prediction(p, y, None, None, cal_probs=pv, cal_labels=yv,
                                                        cal_votes=votes_v, vote=vote, selective=False)
    assert vote_sets is None and "vote_sets" not in detail
    assert set(head) == {G.conformal_key(sc, lv, st) for sc in G.SCORE_LABELS for lv in (0.9, 0.95)
                         for st in ("coverage", "set_size", "covgap_label", "sscv_label")}
    assert {k: head[k] for k in head} == {k: with_votes[k] for k in head}
    assert "vote_coverage_stratum0" not in detail["sets"]["lac_90"] and "coverage_stratum3" in detail["sets"]["lac_90"]
