"""Binning conventions: "left" equals torchmetrics, "right" equals a plain loop like the seed's."""

from __future__ import annotations

import numpy as np
import pytest

from lczldl.evaluation.calibration import adaptive_ece, bin_index, classwise_ece, ece_mce, sce_seed
from lczldl.evaluation.metrics import compute_metrics


def _random_case(seed, n=3000, k=10, sharp=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * sharp
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p = p.astype(np.float32).astype(np.float64)
    p /= p.sum(1, keepdims=True)
    y = np.where(rng.random(n) < 0.6, p.argmax(1), rng.integers(0, k, n))
    return p, y


@pytest.mark.parametrize("seed, n_bins", [(0, 20), (1, 15), (2, 7), (3, 25)])
def test_left_binning_equals_torchmetrics(seed, n_bins):
    torch = pytest.importorskip("torch")
    from torchmetrics.classification import MulticlassCalibrationError

    p, y = _random_case(seed)
    p[:50] = np.eye(10)[y[:50]]                        # saturated: confidence exactly 1.0
    m = compute_metrics(p, y, p, n_bins=n_bins, binning="left")
    for norm, key in (("l1", "ece"), ("max", "mce")):
        tm = MulticlassCalibrationError(num_classes=10, n_bins=n_bins, norm=norm)
        ref = float(tm(torch.tensor(p, dtype=torch.float64), torch.tensor(y)))
        assert m[key] == pytest.approx(ref, abs=2e-6), (norm, n_bins)


def _seed_loop(y, pred, conf, probs, n_bins):
    """A plain loop over bins written after the seed's utils/calibration.py."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.digitize(conf, edges, right=True)
    k = probs.shape[1]
    gaps, counts, cgap = [], [], 0.0
    ccount = 0
    for b in range(n_bins):
        sel = [i for i in range(len(conf)) if idx[i] == b + 1]
        if not sel:
            continue
        acc = sum(y[i] == pred[i] for i in sel) / len(sel)
        gaps.append(abs(acc - sum(conf[i] for i in sel) / len(sel)))
        counts.append(len(sel))
        for c in range(k):
            cs = [i for i in sel if y[i] == c]
            if cs:
                a = sum(y[i] == pred[i] for i in cs) / len(cs)
                pc = sum(probs[i, c] for i in cs) / len(cs)
                cgap += abs(a - pc) * len(cs)
                ccount += len(cs)
    ece = sum(g * c for g, c in zip(gaps, counts, strict=True)) / sum(counts)
    return ece, max(gaps), cgap / ccount / k


@pytest.mark.parametrize("seed, n_bins", [(0, 20), (4, 10), (5, 3)])
def test_right_binning_equals_plain_loop(seed, n_bins):
    p, y = _random_case(seed, n=1500)
    p[:30] = np.eye(10)[y[:30]]
    pred = p.argmax(1)
    conf = p.max(1)
    edge_values = np.linspace(0, 1, n_bins + 1)[1:][:10]          # exactly on bin edges: (lo, hi]
    conf[30:30 + edge_values.size] = edge_values
    ece, mce, sce = _seed_loop(y, pred, conf, p, n_bins)
    e, m = ece_mce(conf, pred == y, n_bins, "right")
    assert e == pytest.approx(ece, abs=1e-12) and m == pytest.approx(mce, abs=1e-12)
    assert sce_seed(p, y, n_bins) == pytest.approx(_seed_loop(y, pred, p.max(1), p, n_bins)[2], abs=1e-12)


def test_bin_index_matches_digitize_on_edges():
    rng = np.random.default_rng(1)
    for n in (1, 3, 10, 15, 20, 25):
        e = np.linspace(0, 1, n + 1)
        c = np.concatenate([rng.random(2000), e, np.nextafter(e, 2), np.nextafter(e, -1)[1:], [0.0, 1.0]])
        right = np.where(c <= 0, -1, np.minimum(np.digitize(c, e, right=True) - 1, n - 1))
        left = np.minimum(np.digitize(c, e, right=False) - 1, n)
        assert (bin_index(c, n, "right") == right).all()
        assert (bin_index(c, n, "left") == left).all()
    with pytest.raises(ValueError):
        bin_index(c, 10, "middle")


def test_zero_confidence_dropped_under_right_only():
    conf = np.array([0.0, 0.3, 1.0])
    correct = np.array([True, False, True])
    # right: 0 dropped; bins (0.25, 0.5] gap .3, (0.75, 1] gap 0 -> ece .3/2
    assert ece_mce(conf, correct, 4, "right") == pytest.approx((0.15, 0.3))
    # left: 0 in [0, .25) gap 1, .3 gap .3, 1.0 own bucket gap 0 -> (1 + .3) / 3
    assert ece_mce(conf, correct, 4, "left") == pytest.approx((1.3 / 3, 1.0))


def test_classwise_and_adaptive_against_loops():
    p, y = _random_case(7, n=400, k=4)
    n, k, nb = len(y), 4, 5
    edges = np.linspace(0, 1, nb + 1)
    total = 0.0
    for c in range(k):
        for b in range(nb):
            sel = [i for i in range(n) if (edges[b] < p[i, c] <= edges[b + 1]) or (b == 0 and p[i, c] == 0)]
            total += abs(sum(float(y[i] == c) for i in sel) - sum(p[i, c] for i in sel))
    assert classwise_ece(p, y, nb) == pytest.approx(total / n / k, abs=1e-12)
    conf, correct = p.max(1), p.argmax(1) == y
    order = sorted(range(n), key=lambda i: conf[i])
    groups = [order[i * n // nb:(i + 1) * n // nb] for i in range(nb)]          # n divisible by nb
    ref = sum(abs(sum(correct[i] for i in g) - sum(conf[i] for i in g)) for g in groups) / n
    assert adaptive_ece(conf, correct, nb) == pytest.approx(ref, abs=1e-12)
