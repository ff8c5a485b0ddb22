"""Figure functions: files written (PNG + PDF, non-empty, valid signatures) and the numbers drawn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.distributions import ENTROPY_BIN_EDGES, entropy_bin_labels, entropy_nats, spearman
from lczldl.evaluation.metrics import compute_metrics
from lczldl.viz import figures as F

K = 10


def _probs(rng: np.random.Generator, labels: np.ndarray, sharp: float = 2.0) -> np.ndarray:
    z = rng.normal(size=(len(labels), K))
    z[np.arange(len(labels)), labels] += sharp
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 300
    labels = rng.integers(0, K, n)
    dist = rng.dirichlet(np.full(K, 0.3), n)
    ent = -(dist * np.log(np.where(dist > 0, dist, 1))).sum(1)
    return rng, labels, ent


def _check_files(paths, stem):
    assert [p.name for p in paths] == [stem.name + ".png", stem.name + ".pdf"]
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000
    assert not list(stem.parent.glob(".*tmp*")), "temp files left behind"


# --- pure data functions -------------------------------------------------------------------------


def test_confusion_percent_hand_case():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 2, 1, 1, 0])
    cm = F.confusion_percent(labels, preds, k=4)
    np.testing.assert_allclose(cm[0], [50, 25, 25, 0])
    np.testing.assert_allclose(cm[1], [0, 100, 0, 0])
    np.testing.assert_allclose(cm[2], [100, 0, 0, 0])
    assert np.isnan(cm[3]).all()                         # class without samples
    np.testing.assert_allclose(np.nansum(cm[:3], axis=1), 100)


def test_confusion_percent_rejects_bad_input():
    with pytest.raises(ValueError):
        F.confusion_percent(np.array([0, 1]), np.array([0]), k=2)
    with pytest.raises(ValueError):
        F.confusion_percent(np.array([0, 5]), np.array([0, 1]), k=2)


def test_voting_confusion_hand_case():
    # two images, original LCZ 1 and 3; votes 0 (none) and non-urban 14 are ignored
    votes = np.array([[1, 1, 2, 0, 14], [3, 3, 3, 7, 0]])
    original = np.array([1, 3])
    cm = F.voting_confusion_percent(votes, original, k=10)
    np.testing.assert_allclose(cm[0, :3], [200 / 3, 100 / 3, 0])
    np.testing.assert_allclose(cm[2, [2, 6]], [75, 25])
    assert np.isnan(cm[1]).all()
    np.testing.assert_allclose(np.nansum(cm, axis=1)[[0, 2]], 100)


def test_vote_entropy_shares_hand_case():
    # bins [-0.1,0.2) [0.2,0.5) [0.5,0.7) [0.7,1) [1,1.3) [1.3,inf): left-closed
    ent = np.array([0.0, 0.2, 0.25, 1.3, 0.1, 2.0, 0.69])
    maj = np.array([1, 2, 10, 3, 11, 17, 12])
    sh = F.vote_entropy_shares(ent, maj)
    np.testing.assert_allclose(sh["urban"], [25, 50, 0, 0, 0, 25])
    np.testing.assert_allclose(sh["non-urban"], 100 / 3 * np.array([1, 0, 1, 0, 0, 1]))
    assert int(sh["n_urban"]) == 4 and int(sh["n_non_urban"]) == 3
    empty = F.vote_entropy_shares(np.array([0.1]), np.array([3]))
    np.testing.assert_array_equal(empty["non-urban"], np.zeros(6))


def test_entropy_bin_labels_match_edges():
    labels = entropy_bin_labels()
    assert len(labels) == len(ENTROPY_BIN_EDGES) - 1
    assert labels[0] == "< 0.2" and labels[-1] == "\u2265 1.3" and labels[2] == "0.5\u20130.7"


def test_reliability_data_matches_evaluation(data):
    rng, labels, ent = data
    p = _probs(rng, labels)
    r = F.reliability_data(p, labels, n_bins=20)
    ref = compute_metrics(p, labels, np.eye(K)[labels], n_bins=20)
    assert r["ece"] == pytest.approx(ref["ece"], abs=1e-12)
    assert r["mce"] == pytest.approx(ref["mce"], abs=1e-12)
    assert r["count"].sum() == len(labels) and r["share"].sum() == pytest.approx(1)


def test_reliability_data_right_closed_bins():
    # confidence 0.5 belongs to bin (0.45, 0.5], i.e. index 9 of 20; a tie at the edge must not
    # land in bin 10 as a left-closed convention would put it
    p = np.array([[0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    r = F.reliability_data(p, np.array([0, 1]), n_bins=20)
    assert r["count"][9] == 1 and r["count"][10] == 0 and r["count"][19] == 1
    assert r["accuracy"][9] == 1.0 and r["accuracy"][19] == 0.0
    # |1 - 0.5| * 1 + |0 - 1| * 1 over 2 samples
    assert r["ece"] == pytest.approx(0.75)


def test_metrics_by_entropy_bin_matches_compute_metrics(data):
    rng, labels, ent = data
    p = _probs(rng, labels)
    dist = np.eye(K)[labels] * 0.5 + 0.05          # only to feed compute_metrics; entropy given apart
    got = F.metrics_by_entropy_bin(p, labels, ent)
    assert got["count"].sum() == len(labels)
    # independent: accuracy per bin by explicit masks
    edges = np.array(ENTROPY_BIN_EDGES)
    for b in range(len(edges) - 1):
        sel = (ent >= edges[b]) & (ent < edges[b + 1])
        if sel.any():
            assert got["accuracy"][b] == pytest.approx((p[sel].argmax(1) == labels[sel]).mean())
            ece = compute_metrics(p[sel], labels[sel], dist[sel] / dist[sel].sum(1, keepdims=True))["ece"]
            assert got["ece"][b] == pytest.approx(ece)
        else:
            assert math.isnan(got["accuracy"][b])


def test_predictive_entropy_and_spearman():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(entropy_nats(p), [0.0, math.log(2)])
    assert spearman(np.array([1, 2, 3.0]), np.array([10, 20, 25.0])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3.0]), np.array([3, 2, 1.0])) == pytest.approx(-1.0)
    assert math.isnan(spearman(np.array([1, 1, 1.0]), np.array([1, 2, 3.0])))


# --- plots -------------------------------------------------------------------------------------


def test_plot_confusion_matrices(tmp_path, data):
    rng, labels, _ = data
    res = {r: (labels, _probs(rng, labels).argmax(1)) for r in ("dist", "onehot", "dist_ls")}
    stem = tmp_path / "figs" / "confusion"
    _check_files(F.plot_confusion_matrices(res, stem), stem)
    with pytest.raises(ValueError):
        F.plot_confusion_matrices({}, stem)


def test_plot_reliability_single_and_grid(tmp_path, data):
    rng, labels, _ = data
    p = _probs(rng, labels)
    stem = tmp_path / "rel"
    _check_files(F.plot_reliability(p, labels, stem, title="one-hot", ece=0.05), stem)
    panels = {"onehot": {"plain": (p, labels), "temperature": (np.sqrt(p) / np.sqrt(p).sum(1, keepdims=True), labels)},
              "dist": {"plain": (p, labels)}}                   # TS missing -> "not available" panel
    stem = tmp_path / "grid"
    _check_files(F.plot_reliability_grid(panels, stem), stem)


def test_plot_vote_entropy_bars(tmp_path, data):
    rng, _, ent = data
    maj = rng.integers(1, 18, len(ent))
    stem = tmp_path / "ent"
    _check_files(F.plot_vote_entropy_bars(ent, maj, stem), stem)
    stem = tmp_path / "ent_urban_only"                       # empty non-urban group still draws
    _check_files(F.plot_vote_entropy_bars(ent, np.full(len(ent), 3), stem, note="urban only"), stem)


def test_plot_voting_confusion(tmp_path, data):
    rng, _, _ = data
    votes = rng.integers(0, 18, (200, 11))
    original = rng.integers(1, 11, 200)
    stem = tmp_path / "voting"
    _check_files(F.plot_voting_confusion(votes, original, stem), stem)


def test_plot_metrics_by_entropy_bin_and_hexbin(tmp_path, data):
    rng, labels, ent = data
    per = {r: [(_probs(rng, labels), labels, ent) for _ in range(2)] for r in ("onehot", "dist")}
    stem = tmp_path / "meb"
    _check_files(F.plot_metrics_by_entropy_bin(per, stem), stem)
    one = {"dist": (_probs(rng, labels), labels, ent)}       # a single seed (no error bars)
    stem = tmp_path / "meb1"
    _check_files(F.plot_metrics_by_entropy_bin(one, stem), stem)
    hexd = {r: (_probs(rng, labels), ent) for r in ("onehot", "onehot_ls", "dist", "dist_ls", "dawid_skene")}
    stem = tmp_path / "hex"
    _check_files(F.plot_entropy_hexbin(hexd, stem), stem)


def test_plot_seed_dots(tmp_path):
    rng = np.random.default_rng(0)
    per = {r: [{"oa": rng.uniform(0.5, 0.7), "ece": rng.uniform(0, 0.1), "ce_distr": 1.0, "kappa": 0.5}
               for _ in range(3)] for r in ("onehot", "dist")}
    stem = tmp_path / "dots"
    _check_files(F.plot_seed_dots(per, stem), stem)
    with pytest.raises(ValueError):
        F.plot_seed_dots(per, stem, metrics=[])
