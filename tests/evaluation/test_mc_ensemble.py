"""MC dropout leaves BatchNorm alone; ensemble averaging and the seed's confidence compat mode."""

from __future__ import annotations

import numpy as np
import pytest

from lczldl.errors import DataError
from lczldl.evaluation import compute_metrics
from lczldl.evaluation.ensemble import ensemble_confidence, ensemble_probs
from lczldl.evaluation.mc_dropout import mc_dropout_predict

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
