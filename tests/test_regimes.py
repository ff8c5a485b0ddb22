"""The regime registry against the layers that use it: the store serves every target, the losses
exist, the config accepts exactly the registered names, and one entry is all a new regime needs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lczldl import regimes as R
from lczldl.data.store import TARGETS, SplitArrays, make_targets
from lczldl.training.losses import LOSSES


def test_the_papers_grid_and_order():
    assert R.PAPER_REGIMES == ("onehot", "onehot_ls", "dist", "dist_ls")
    assert list(R.REGIMES)[:5] == ["onehot", "onehot_ls", "dist", "dist_ls", "dawid_skene"]
    assert list(R.REGIMES)[5:] == [f"agg_{m}{s}" for m in ("one_coin", "glad", "mace", "wawa")
                                   for s in ("", "_onehot")]                       # opt-in, like dawid_skene
    assert not any(R.REGIMES[n].paper for n in list(R.REGIMES)[4:])
    assert R.order_regimes({"zzz", "dist", "aaa", "onehot"}) == ["onehot", "dist", "aaa", "zzz"]


def test_targets_losses_and_smoothing_rule():
    for r in R.REGIMES.values():
        assert {r.train_target, r.val_target, r.ts_target} <= set(TARGETS), r.name
        assert r.compat17_target is None or r.compat17_target in TARGETS
        assert r.loss in LOSSES
        assert "_ls" not in r.val_target and "_ls" not in r.ts_target     # smoothing: training only
    assert R.regime_targets("onehot_ls") == ("onehot_ls", "onehot", "ce")
    assert R.regime_targets("onehot_ls", compat17=True) == ("onehot_ls17", "onehot", "ce")
    assert R.regime_targets("dist", compat17=True) == ("distribution", "distribution", "kl")
    with pytest.raises(ValueError, match="unknown regime 'soft'"):
        R.regime_targets("soft")


def test_store_serves_every_regime_target():
    n, k = 4, 10
    label = np.array([0, 3, 3, 9])
    dist = np.full((n, k), 1 / k, dtype=np.float32)
    post = np.eye(k, dtype=np.float32)[[1, 3, 2, 9]] * 0.7 + 0.03
    arrays = SplitArrays(name="x", n=n, image=None, label=label, distribution=dist, dawid_skene=dist,
                         votes=np.zeros((n, 11), np.int8), original=label + 1, city=np.zeros(n, np.int16),
                         vote_entropy=np.zeros(n, np.float32),
                         aggregated={f"agg_{m}": post for m in ("one_coin", "glad", "mace", "wawa")})
    for r in R.REGIMES.values():
        for t in (r.train_target, r.val_target, r.ts_target):
            assert make_targets(arrays, t).shape == (n, k)
    np.testing.assert_array_equal(make_targets(arrays, "agg_mace"), post)
    np.testing.assert_array_equal(make_targets(arrays, "agg_mace_onehot").argmax(1), [1, 3, 2, 9])
    assert make_targets(arrays, "agg_mace_onehot").sum() == n                 # one-hot of the argmax


def test_labels_colours_and_unknown_names():
    labels = [R.regime_label(n) for n in R.REGIMES]
    colors = [R.regime_color(n) for n in R.REGIMES]
    assert len(set(labels)) == len(labels) and len(set(colors)) == len(colors)
    assert R.regime_label("agg_x") == "agg_x"
    assert R.regime_color("agg_x", 1) == R.EXTRA_COLORS[1] and R.regime_color("agg_x", 1) not in colors


def test_config_accepts_exactly_the_registered_regimes():
    from lczldl.config import TrainConfig

    for name in R.REGIMES:
        assert TrainConfig(regime=name).regime == name
    with pytest.raises(ValueError):
        TrainConfig(regime="agg_crowd")


def test_a_new_regime_is_one_entry(monkeypatch):
    new = dataclasses.replace(R.REGIMES["dist"], name="agg_test", label="aggregated", color="#123456")
    monkeypatch.setitem(R.REGIMES, "agg_test", new)
    assert R.regime_targets("agg_test") == ("distribution", "distribution", "kl")
    assert R.order_regimes(["agg_test", "onehot"]) == ["onehot", "agg_test"]
    assert R.regime_label("agg_test") == "aggregated" and R.regime_color("agg_test") == "#123456"
