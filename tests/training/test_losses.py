import math

import numpy as np
import pytest
import torch

from lczldl.regimes import regime_targets
from lczldl.training.losses import kl_divergence, loss_fn, soft_cross_entropy


def _logp(rows):
    return torch.log(torch.tensor(rows, dtype=torch.float64))


def test_soft_cross_entropy_by_hand():
    p = [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]
    t = [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]
    want = (-math.log(0.7) + -(0.2 * math.log(0.25) + 0.3 * math.log(0.25) + 0.5 * math.log(0.5))) / 2
    got = soft_cross_entropy(_logp(p), torch.tensor(t, dtype=torch.float64))
    assert got.item() == pytest.approx(want, abs=1e-12)


def test_kl_by_hand_with_zero_targets():
    p = [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]
    t = [[0.0, 0.6, 0.4], [0.0, 1.0, 0.0]]
    row0 = 0.6 * math.log(0.6 / 0.3) + 0.4 * math.log(0.4 / 0.2)
    row1 = math.log(1.0 / 0.6)
    got = kl_divergence(_logp(p), torch.tensor(t, dtype=torch.float64))
    assert got.item() == pytest.approx((row0 + row1) / 2, abs=1e-12)


def test_kl_ignores_minus_inf_where_target_is_zero_and_gradient_is_finite():
    logp = torch.tensor([[0.0, -math.inf, -math.inf]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0, 0.0]])
    loss = kl_divergence(logp, t)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logp.grad).all()


def test_kl_equals_ce_minus_target_entropy_and_is_zero_at_target():
    rng = np.random.default_rng(0)
    t = torch.tensor(rng.dirichlet(np.ones(10), size=7))
    logp = torch.log_softmax(torch.tensor(rng.normal(size=(7, 10))), dim=1)
    ent = -(t * t.log()).sum(1).mean()
    assert kl_divergence(logp, t).item() == pytest.approx((soft_cross_entropy(logp, t) - ent).item(), abs=1e-12)
    assert kl_divergence(t.log(), t).item() == pytest.approx(0.0, abs=1e-12)


def test_regime_targets():
    assert regime_targets("onehot") == ("onehot", "onehot", "ce")
    assert regime_targets("onehot_ls") == ("onehot_ls", "onehot", "ce")          # val unsmoothed
    assert regime_targets("onehot_ls", compat17=True)[0] == "onehot_ls17"
    assert regime_targets("dist") == ("distribution", "distribution", "kl")
    assert regime_targets("dist_ls") == ("distribution_ls", "distribution", "kl")  # val unsmoothed
    assert regime_targets("dawid_skene") == ("dawid_skene", "dawid_skene", "kl")
    with pytest.raises(ValueError):
        regime_targets("soft")
    assert loss_fn("kl") is kl_divergence
