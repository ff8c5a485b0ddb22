"""The verdict table: paired two-level intervals over the paper's claims, Holm over the family."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.evaluation.intervals import bootstrap_counts
from lczldl.evaluation.metrics import compute_metrics
from lczldl.evaluation.verdict import CLAIMS, claim_draws, not_resolved, verdict_rows, word


def _values(effects: dict[tuple[str, str, str], list[float]], n_draws: int = 50,
            draw_sd: float = 0.0) -> dict:
    """values for verdict_rows: onehot at 1.0 (ce_distr) / 0.05 (ece) for every seed; a claim's
    regime at onehot + the given per-seed differences; draws = value + draw noise (same per draw
    for both regimes when draw_sd = 0, so the image part is 0)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, draw_sd, n_draws)
    base = {"ce_distr": 1.0, "ece": 0.05}
    out: dict = {}
    n_seeds = len(next(iter(effects.values())))
    for method in ("plain", "temperature"):
        for s in range(n_seeds):
            out[("onehot", method, s)] = {k: (v, np.full(n_draws, v)) for k, v in base.items()}
    for (regime, method, metric), diffs in effects.items():
        for s, d in enumerate(diffs):
            cell = out.setdefault((regime, method, s), {k: (v, np.full(n_draws, v)) for k, v in base.items()})
            v = base[metric] + d
            cell[metric] = (v, v + noise)
    return out


def test_one_clear_effect_is_lower_and_the_rest_not_resolved():
    """dist plain ce_distr lower by 0.10 +- 0.01 over 5 seeds: t = 0.10 / (0.0079 / sqrt(5)) ~ 28,
    p ~ 1e-5, Holm x 8 still tiny -> "lower"; the others differ by noise around 0."""
    diffs = [-0.09, -0.11, -0.10, -0.095, -0.105]
    noise = [0.01, -0.02, 0.015, -0.005, 0.0]
    effects = {c: noise for c in CLAIMS}
    effects[("dist", "plain", "ce_distr")] = diffs
    rows = verdict_rows(_values(effects))
    assert len(rows) == len(CLAIMS)
    by = {(r["regime"], r["method"], r["metric"]): r for r in rows}
    hit = by[("dist", "plain", "ce_distr")]
    assert hit["verdict"] == "lower" and hit["n_pairs"] == 5
    assert hit["mean_diff"] == pytest.approx(-0.1)
    assert hit["ci_high"] < 0 and hit["p_holm"] <= 0.05
    assert hit["p_holm"] == pytest.approx(min(1.0, 8 * hit["p"]))       # the smallest p: Holm x m
    for key, r in by.items():
        if key != ("dist", "plain", "ce_distr"):
            assert r["verdict"] == not_resolved(5)


def test_holm_can_withhold_a_verdict_that_one_interval_alone_would_give():
    """p between 0.05 / 8 and 0.05 for one claim, the rest null: its 95 % interval excludes 0, but
    Holm over 8 claims does not reject, so it stays "not resolved"."""
    effects = {c: [0.01, -0.01, 0.005] for c in CLAIMS}
    effects[("dist_ls", "temperature", "ece")] = [0.015, 0.025, 0.020]   # t = 6.93, p = 0.020
    rows = verdict_rows(_values(effects))
    r = next(r for r in rows if (r["regime"], r["method"], r["metric"]) == ("dist_ls", "temperature", "ece"))
    assert r["ci_low"] > 0 and 0.0125 < r["p"] < 0.05
    assert r["p_holm"] > 0.05 and r["verdict"] == not_resolved(3)


def test_two_seeds_are_never_enough_for_a_small_consistent_difference():
    """The old bootstrap starred any pair of same-sign differences; here +0.02 and +0.04 give a
    t interval of +0.03 +- 0.127: not resolved."""
    effects = {c: [0.0, 0.0] for c in CLAIMS}
    effects[("dist", "plain", "ece")] = [0.02, 0.04]
    rows = verdict_rows(_values(effects))
    r = next(r for r in rows if (r["regime"], r["method"], r["metric"]) == ("dist", "plain", "ece"))
    assert r["ci_low"] < 0 < r["ci_high"] and r["verdict"] == not_resolved(2)


def test_image_sampling_widens_the_interval():
    effects = {c: [-0.05, -0.06, -0.055, -0.045] for c in CLAIMS}
    tight = verdict_rows(_values(effects))[0]
    wide = verdict_rows(_values(effects, draw_sd=0.05))[0]
    assert wide["ci_high"] - wide["ci_low"] > tight["ci_high"] - tight["ci_low"]


def test_claims_without_runs_are_left_out_and_holm_counts_the_rest():
    vals = _values({("dist", "plain", "ce_distr"): [-0.1, -0.11, -0.09]})
    vals = {k: v for k, v in vals.items() if k[0] != "dist" or k[1] == "plain"}
    rows = verdict_rows(vals, claims=[c for c in CLAIMS if c[0] == "dist"])
    assert {(r["method"], r["metric"]) for r in rows} == {("plain", "ce_distr"), ("plain", "ece")}


def test_word():
    assert word(-0.1, 0.01, 5) == "lower" and word(0.1, 0.049, 5) == "higher"
    assert word(0.1, 0.06, 5) == not_resolved(5) == "not resolved with 5 seeds at this budget"
    assert word(float("nan"), float("nan"), 1) == "not resolved with 1 seed at this budget"


def test_claim_draws_are_the_metrics_on_the_resampled_images():
    """Draw b equals compute_metrics on the images of draw b (an independent route: explicit
    resampling instead of weights)."""
    rng = np.random.default_rng(3)
    n, k = 60, 10
    probs = rng.dirichlet(np.ones(k), n)
    labels = probs.argmax(axis=1)
    dist = rng.dirichlet(np.ones(k) * 0.3, n)
    w = bootstrap_counts(n, 4, seed=1)
    out = claim_draws(probs, labels, dist, 20, w)
    idx = np.repeat(np.arange(n), w[2].astype(int))
    direct = compute_metrics(probs[idx], labels[idx], dist[idx], n_bins=20)
    for key in ("ce_distr", "ece"):
        assert out[key][1][2] == pytest.approx(direct[key], abs=1e-10)
        assert math.isclose(out[key][0], compute_metrics(probs, labels, dist, n_bins=20)[key])
