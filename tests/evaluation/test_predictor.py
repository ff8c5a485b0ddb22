"""The predictor: MC dropout leaves BatchNorm alone; MC, ensemble and temperature values in closed
form with dropout masks drawn by hand; ensemble averaging and the seed's confidence compat mode;
MapPredictor goes through it."""

from __future__ import annotations

import numpy as np
import pytest

from lczldl.errors import DataError
from lczldl.evaluation.metrics import compute_metrics
from lczldl.evaluation.predictor import ensemble_confidence, ensemble_probs, mc_dropout_predict

torch = pytest.importorskip("torch")
nn = torch.nn


class Tiny(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(p)
        self.fc = nn.Linear(4, 5)
        self.seen_modes = []

    def forward(self, x):
        self.seen_modes.append((self.bn.training, self.drop.training))
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return torch.log_softmax(self.fc(self.drop(h)), dim=1)


def _data(n=40):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_bn_untouched_and_in_eval_during_passes():
    torch.manual_seed(0)
    m = Tiny()
    m.train()
    m(torch.randn(16, 3, 8, 8) * 3 + 1)                 # move running stats away from defaults
    m.seen_modes.clear()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out = mc_dropout_predict(m, _data(), passes=5, batch_size=16)
    assert set(m.seen_modes) == {(False, True)}          # BN eval, dropout train, every pass
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert m.training and m.bn.training                  # modes restored
    assert out["probs"].shape == (40, 5)
    np.testing.assert_allclose(out["probs"].sum(1), 1, atol=1e-6)
    assert (out["mutual_info"] > 1e-4).mean() > 0.5       # passes differ with p = 0.5


def test_dropout_zero_gives_identical_passes_and_matches_eval():
    m = Tiny(p=0.0).eval()
    x = _data()
    out = mc_dropout_predict(m, x, passes=4, batch_size=7)
    ref = m(x).exp().double().detach().numpy()
    np.testing.assert_allclose(out["probs"], ref, atol=1e-7)
    np.testing.assert_allclose(out["mutual_info"], 0, atol=1e-7)
    h = -(ref * np.log(ref)).sum(1)
    np.testing.assert_allclose(out["predictive_entropy"], h, atol=1e-6)


def test_mutual_info_by_hand_and_seeded():
    m = Tiny()
    x = _data(8)
    a = mc_dropout_predict(m, x, passes=3, seed=1)
    b = mc_dropout_predict(m, [x], passes=3, seed=1)              # iterable of batches, same stream
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-12)
    c = mc_dropout_predict(m, [x[:5], x[5:]], passes=3, seed=2)
    assert c["probs"].shape == (8, 5) and not np.allclose(c["probs"], a["probs"])
    # recompute by hand with the same RNG stream
    torch.manual_seed(1)
    m.eval()
    m.drop.train()
    with torch.no_grad():
        ps = [m(x).exp().double().numpy() for _ in range(3)]
    mean = np.mean(ps, axis=0)
    h = -(mean * np.log(mean)).sum(1)
    mi = h - np.mean([-(p * np.log(p)).sum(1) for p in ps], axis=0)
    np.testing.assert_allclose(a["probs"], mean, atol=1e-7)
    np.testing.assert_allclose(a["mutual_info"], mi, atol=1e-6)


def test_uint16_images_scaled():
    m = Tiny(p=0.0).eval()
    x = (np.random.default_rng(0).random((6, 3, 8, 8)) * 3000).astype(np.uint16)
    out = mc_dropout_predict(m, x, passes=1)
    ref = m(torch.from_numpy(x.astype(np.float32) / 10000)).exp().detach().numpy()
    np.testing.assert_allclose(out["probs"], ref, atol=1e-6)


def test_ensemble_mean_and_confidences():
    a = np.array([[0.6, 0.4], [0.1, 0.9]])
    b = np.array([[0.2, 0.8], [0.3, 0.7]])
    np.testing.assert_allclose(ensemble_probs([a, b]), [[0.4, 0.6], [0.2, 0.8]])
    np.testing.assert_allclose(ensemble_confidence([a, b]), [0.6, 0.8])
    np.testing.assert_allclose(ensemble_confidence([a, b], "mean_member"), [0.7, 0.8])
    # compat ECE (1 bin): correctness from argmax of the mean (both right), confidence mean-member
    m = compute_metrics(ensemble_probs([a, b]), np.array([1, 1]), ensemble_probs([a, b]), n_bins=1,
                        confidence=ensemble_confidence([a, b], "mean_member"))
    assert m["ece"] == pytest.approx(1 - 0.75)
    with pytest.raises(DataError):
        ensemble_probs([a, b[:1]])
    with pytest.raises(DataError):
        ensemble_probs([])
    with pytest.raises(ValueError):
        ensemble_confidence([a], "median")


# ---------------------------------------------------------------- values in closed form

class CoinLogits(nn.Module):
    """logits = (dropout(x)_0 * scale, 0) for x (B, 2, 1, 1): each pass keeps or drops x_0, so a
    pass's probability of class 0 is sigmoid(2 x_0 * scale) (kept, p = 0.5) or 1/2 (dropped)."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.scale = scale

    def forward(self, x):
        h = self.drop(x.reshape(len(x), 2))
        logits = torch.stack([h[:, 0] * self.scale, torch.zeros(len(x))], dim=1)
        return torch.log_softmax(logits, dim=1)


def _binary_entropy(q):
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def _hand_mc(x0, scales, passes, seed, batch):
    """Mean class-0 probability and mean per-draw entropy over members x passes, masks drawn as
    torch's dropout draws them (bernoulli(1 - p) per element, batch by batch, member by member)."""
    torch.manual_seed(seed)
    q_sum, h_sum = np.zeros(len(x0)), np.zeros(len(x0))
    for start in range(0, len(x0), batch):
        xb = x0[start:start + batch]
        for scale in scales:
            for _ in range(passes):
                kept = torch.empty(len(xb), 2).bernoulli_(0.5)[:, 0].numpy()
                q = np.where(kept == 1, 1 / (1 + np.exp(-2 * xb * scale)), 0.5)
                q_sum[start:start + batch] += q
                h_sum[start:start + batch] += _binary_entropy(q)
    n = len(scales) * passes
    return q_sum / n, h_sum / n


def _coin_inputs(n=9):
    x0 = np.linspace(-2.0, 3.0, n)
    x = np.zeros((n, 2, 1, 1), dtype=np.float32)
    x[:, 0, 0, 0] = x0
    return x0.astype(np.float32).astype(np.float64), x


def test_mc_dropout_values_in_closed_form():
    x0, x = _coin_inputs()
    out = mc_dropout_predict(CoinLogits(), x, passes=6, batch_size=4, seed=5)
    q, mean_h = _hand_mc(x0, [1.0], passes=6, seed=5, batch=4)
    np.testing.assert_allclose(out["probs"][:, 0], q, rtol=1e-6)
    np.testing.assert_allclose(out["probs"][:, 1], 1 - q, rtol=1e-6)
    np.testing.assert_allclose(out["predictive_entropy"], _binary_entropy(q), rtol=1e-6)
    np.testing.assert_allclose(out["mutual_info"], _binary_entropy(q) - mean_h, atol=1e-7)
    assert (out["mutual_info"][np.abs(x0) > 0.5] > 1e-3).any()     # passes really differ
    assert int(out["passes"]) == 6


def test_ensemble_with_temperatures_and_mc_by_hand():
    from lczldl.evaluation.predictor import Predictor

    x0, x = _coin_inputs(7)
    m1, m2 = CoinLogits(1.0), CoinLogits(-0.5)
    # no dropout: each member deterministic, p0 = sigmoid(x0 * s / T); the ensemble is their mean
    m1.drop.p = m2.drop.p = 0.0
    out = Predictor([m1, m2], temperatures=[2.0, 0.5]).predict(x, batch_size=3)
    sig = lambda z: 1 / (1 + np.exp(-z))                               # noqa: E731
    np.testing.assert_allclose(out["probs"][:, 0], (sig(x0 / 2.0) + sig(-0.5 * x0 / 0.5)) / 2, rtol=1e-6)
    q1, q2 = sig(x0 / 2.0), sig(-x0)
    mi = _binary_entropy((q1 + q2) / 2) - (_binary_entropy(q1) + _binary_entropy(q2)) / 2
    np.testing.assert_allclose(out["mutual_info"], mi, atol=1e-7)     # disagreement between members
    # MC passes in every member, masks drawn member by member within each batch
    m1.drop.p = m2.drop.p = 0.5
    out = Predictor([m1, m2], mc_passes=3).predict(x, batch_size=4, seed=11)
    q, mean_h = _hand_mc(x0, [1.0, -0.5], passes=3, seed=11, batch=4)
    np.testing.assert_allclose(out["probs"][:, 0], q, rtol=1e-6)
    np.testing.assert_allclose(out["mutual_info"], _binary_entropy(q) - mean_h, atol=1e-7)


def test_map_predictor_is_the_predictor_with_its_seed_stream():
    from lczldl.maps.predict import MapPredictor

    x0, x = _coin_inputs(8)
    models = [CoinLogits(1.0), CoinLogits(2.0)]
    for m in models:
        m.train()
    mp = MapPredictor(models, [1.0, 1.0], mc_passes=2, batch_size=5, seed=3)
    got = mp(x, key=7)
    assert got.dtype == np.float32 and got.shape == (8, 2)
    q, _ = _hand_mc(x0, [1.0, 2.0], passes=2, seed=3 * 1_000_003 + 7, batch=5)
    np.testing.assert_allclose(got[:, 0], q, rtol=1e-6)
    np.testing.assert_array_equal(mp(x, key=7), got)                  # reproducible per key
    assert all(m.training and m.drop.training for m in models)        # modes restored
    plain = MapPredictor(models, [1.0, 1.0], mc_passes=0)(x)           # no MC: dropout off, no x2
    np.testing.assert_allclose(plain[:, 0], (1 / (1 + np.exp(-x0)) + 1 / (1 + np.exp(-2 * x0))) / 2,
                               rtol=1e-6)


def test_sen2lcz_trunk_once_per_batch_gives_the_same_mc_passes():
    """Sen2LCZ splits at its first dropout (forward = tail(trunk(x))); MC dropout then runs the trunk
    once per batch. The passes are bit-identical to full forward passes with the same seed (a wrapper
    without trunk / tail takes the full path), and the trunk really runs once per batch."""
    from lczldl.evaluation.predictor import Predictor
    from lczldl.models.sen2lcz import Sen2LCZ

    torch.manual_seed(3)
    model = Sen2LCZ(num_classes=10, width=4)
    for m in model.modules():                       # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(0).uniform(0, 0.5, (24, 10, 32, 32)).astype(np.float32)

    class Whole(nn.Module):                        # the same network, seen as one forward
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, t):
            return self.net(t)

    calls = []
    model.register_forward_pre_hook(lambda *a: calls.append("forward"))
    trunk = model.trunk
    model.trunk = lambda t: calls.append("trunk") or trunk(t)
    split = Predictor([model], mc_passes=3).predict(x, batch_size=10, seed=5)
    assert calls == ["trunk"] * 3                   # 3 batches, no full forward
    del model.trunk
    whole = Predictor([Whole(model)], mc_passes=3).predict(x, batch_size=10, seed=5)
    for k in ("probs", "predictive_entropy", "mutual_info"):
        np.testing.assert_array_equal(split[k], whole[k])
    with torch.no_grad():
        model.eval()
        np.testing.assert_array_equal(model.tail(model.trunk(torch.from_numpy(x))).numpy(),
                                      model(torch.from_numpy(x)).numpy())
