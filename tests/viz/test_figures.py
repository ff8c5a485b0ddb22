"""Figure functions: the numbers drawn, read back from the returned figures against values computed
by hand, and the files written (non-empty, valid signatures). Each figure's variants are saved as
PNG here; PDF beside PNG is tested once here (figure_formats) and for every figure of a whole
study in test_report (`lczldl figures --pdf`), where the PDF backend's cost is paid once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.distributions import ENTROPY_BIN_EDGES, entropy_bin_labels, entropy_nats, spearman
from lczldl.evaluation.metrics import compute_metrics
from lczldl.viz.figures.confusion import (
    confusion_percent,
    draw_confusion_matrices,
    draw_voting_confusion,
    plot_confusion_matrices,
    plot_voting_confusion,
    voting_confusion_percent,
)
from lczldl.viz.figures.entropy import (
    draw_entropy_hexbin,
    draw_metrics_by_entropy_bin,
    draw_vote_entropy_bars,
    metrics_by_entropy_bin,
    plot_entropy_hexbin,
    plot_metrics_by_entropy_bin,
    plot_vote_entropy_bars,
    vote_entropy_shares,
)
from lczldl.viz.figures.reliability import (
    draw_reliability,
    draw_reliability_grid,
    plot_reliability,
    plot_reliability_grid,
    reliability_data,
)
from lczldl.viz.figures.seeds import draw_seed_dots, plot_seed_dots
from lczldl.viz.style import figure_formats

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


@pytest.fixture
def png_only():
    """Figures saved as PNG only (figure_formats(pdf=False)) inside the test."""
    with figure_formats(pdf=False):
        yield


def _check_files(paths, stem, pdf: bool = False):
    """The PNG (and with ``pdf`` the PDF) written at ``stem``, valid and not tiny; no temp file left."""
    assert [p.name for p in paths] == [stem.name + ".png"] + ([stem.name + ".pdf"] if pdf else [])
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
    if pdf:
        assert paths[1].read_bytes()[:5] == b"%PDF-" and paths[1].stat().st_size > 2000
    assert not list(stem.parent.glob(".*tmp*")), "temp files left behind"


# --- pure data functions -------------------------------------------------------------------------


def test_confusion_percent_hand_case():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 2, 1, 1, 0])
    cm = confusion_percent(labels, preds, k=4)
    np.testing.assert_allclose(cm[0], [50, 25, 25, 0])
    np.testing.assert_allclose(cm[1], [0, 100, 0, 0])
    np.testing.assert_allclose(cm[2], [100, 0, 0, 0])
    assert np.isnan(cm[3]).all()                         # class without samples
    np.testing.assert_allclose(np.nansum(cm[:3], axis=1), 100)


def test_confusion_percent_rejects_bad_input():
    with pytest.raises(ValueError):
        confusion_percent(np.array([0, 1]), np.array([0]), k=2)
    with pytest.raises(ValueError):
        confusion_percent(np.array([0, 5]), np.array([0, 1]), k=2)


def _voting_counts() -> np.ndarray:
    """Original LCZ 1: votes 1, 1, 2; original LCZ 3: votes 3, 3, 3, 7; no other row has votes."""
    counts = np.zeros((10, 10), dtype=np.int64)
    counts[0, 0], counts[0, 1], counts[2, 2], counts[2, 6] = 2, 1, 3, 1
    return counts


def test_voting_confusion_hand_case():
    cm = voting_confusion_percent(_voting_counts())
    np.testing.assert_allclose(cm[0, :3], [200 / 3, 100 / 3, 0])
    np.testing.assert_allclose(cm[2, [2, 6]], [75, 25])
    assert np.isnan(cm[1]).all()
    np.testing.assert_allclose(np.nansum(cm, axis=1)[[0, 2]], 100)
    with pytest.raises(ValueError):
        voting_confusion_percent(np.ones((10, 9)))


def test_vote_entropy_shares_hand_case():
    # image counts per paper bin: urban 1, 2, 0, 0, 0, 1 (4 images); non-urban 1, 0, 1, 0, 0, 1
    sh = vote_entropy_shares([1, 2, 0, 0, 0, 1], [1, 0, 1, 0, 0, 1])
    np.testing.assert_allclose(sh["urban"], [25, 50, 0, 0, 0, 25])
    np.testing.assert_allclose(sh["non-urban"], 100 / 3 * np.array([1, 0, 1, 0, 0, 1]))
    assert int(sh["n_urban"]) == 4 and int(sh["n_non_urban"]) == 3
    empty = vote_entropy_shares([0, 1, 0, 0, 0, 0], [0] * 6)
    np.testing.assert_array_equal(empty["non-urban"], np.zeros(6))
    assert int(empty["n_non_urban"]) == 0
    for bad in ([1, 2, 3], [1, -1, 0, 0, 0, 0], [0.5, 0, 0, 0, 0, 0]):
        with pytest.raises(ValueError):
            vote_entropy_shares(bad, [0] * 6)


def test_entropy_bin_labels_match_edges():
    labels = entropy_bin_labels()
    assert len(labels) == len(ENTROPY_BIN_EDGES) - 1
    assert labels[0] == "< 0.2" and labels[-1] == "\u2265 1.3" and labels[2] == "0.5\u20130.7"


def test_reliability_data_matches_evaluation(data):
    rng, labels, ent = data
    p = _probs(rng, labels)
    r = reliability_data(p, labels, n_bins=20)
    ref = compute_metrics(p, labels, np.eye(K)[labels], n_bins=20)
    assert r["ece"] == pytest.approx(ref["ece"], abs=1e-12)
    assert r["mce"] == pytest.approx(ref["mce"], abs=1e-12)
    assert r["count"].sum() == len(labels) and r["share"].sum() == pytest.approx(1)


def test_reliability_data_right_closed_bins():
    # confidence 0.5 belongs to bin (0.45, 0.5], i.e. index 9 of 20; a tie at the edge must not
    # land in bin 10 as a left-closed convention would put it
    p = np.array([[0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    r = reliability_data(p, np.array([0, 1]), n_bins=20)
    assert r["count"][9] == 1 and r["count"][10] == 0 and r["count"][19] == 1
    assert r["accuracy"][9] == 1.0 and r["accuracy"][19] == 0.0
    # |1 - 0.5| * 1 + |0 - 1| * 1 over 2 samples
    assert r["ece"] == pytest.approx(0.75)


def test_metrics_by_entropy_bin_matches_compute_metrics(data):
    rng, labels, ent = data
    p = _probs(rng, labels)
    dist = np.eye(K)[labels] * 0.5 + 0.05          # only to feed compute_metrics; entropy given apart
    got = metrics_by_entropy_bin(p, labels, ent, 20)                   # the paper's 20 bins
    assert got["count"].sum() == len(labels)
    # independent: accuracy per bin by explicit masks
    edges = np.array(ENTROPY_BIN_EDGES)
    for b in range(len(edges) - 1):
        sel = (ent >= edges[b]) & (ent < edges[b + 1])
        if sel.any():
            assert got["accuracy"][b] == pytest.approx((p[sel].argmax(1) == labels[sel]).mean())
            ece = compute_metrics(p[sel], labels[sel], dist[sel] / dist[sel].sum(1, keepdims=True), 20)["ece"]
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


def test_plot_confusion_matrices(tmp_path, data, png_only):
    rng, labels, _ = data
    res = {r: (labels, _probs(rng, labels).argmax(1)) for r in ("dist", "onehot", "dist_ls")}
    stem = tmp_path / "figs" / "confusion"
    _check_files(plot_confusion_matrices(res, stem), stem)
    with pytest.raises(ValueError):
        plot_confusion_matrices({}, stem)


def test_plot_reliability_single_and_grid(tmp_path, data, png_only):
    rng, labels, _ = data
    p = _probs(rng, labels)
    stem = tmp_path / "rel"
    _check_files(plot_reliability(p, labels, stem, n_bins=20, title="one-hot", ece=0.05), stem)
    panels = {"onehot": {"plain": (p, labels), "temperature": (np.sqrt(p) / np.sqrt(p).sum(1, keepdims=True), labels)},
              "dist": {"plain": (p, labels)}}                   # TS missing -> "not available" panel
    stem = tmp_path / "grid"
    _check_files(plot_reliability_grid(panels, stem, n_bins=20), stem)


def test_plot_vote_entropy_bars(tmp_path, data, png_only):
    rng, _, _ = data
    urban, non_urban = rng.integers(0, 500, 6), rng.integers(0, 20, 6)
    stem = tmp_path / "ent"
    _check_files(plot_vote_entropy_bars(urban, non_urban, stem), stem)
    stem = tmp_path / "ent_urban_only"                       # empty non-urban group still draws
    _check_files(plot_vote_entropy_bars(urban, np.zeros(6), stem, note="urban only"), stem)


def test_plot_voting_confusion(tmp_path, data, png_only):
    rng, _, _ = data
    stem = tmp_path / "voting"
    _check_files(plot_voting_confusion(rng.integers(0, 300, (10, 10)), stem), stem)


def test_plot_metrics_by_entropy_bin_and_hexbin(tmp_path, data, png_only):
    rng, labels, ent = data
    per = {r: [(_probs(rng, labels), labels, ent) for _ in range(2)] for r in ("onehot", "dist")}
    stem = tmp_path / "meb"
    _check_files(plot_metrics_by_entropy_bin(per, stem, n_bins=20), stem)
    one = {"dist": (_probs(rng, labels), labels, ent)}       # a single seed (no error bars)
    stem = tmp_path / "meb1"
    _check_files(plot_metrics_by_entropy_bin(one, stem, n_bins=20), stem)
    hexd = {r: (_probs(rng, labels), ent) for r in ("onehot", "onehot_ls", "dist", "dist_ls", "dawid_skene")}
    stem = tmp_path / "hex"
    _check_files(plot_entropy_hexbin(hexd, stem), stem)


def test_plot_seed_dots_files(tmp_path, png_only):
    rng = np.random.default_rng(0)
    per = {r: [{"oa": rng.uniform(0.5, 0.7), "ece": rng.uniform(0, 0.1), "ce_distr": 1.0, "kappa": 0.5}
               for _ in range(3)] for r in ("onehot", "dist")}
    stem = tmp_path / "dots"
    _check_files(plot_seed_dots(per, stem), stem)
    with pytest.raises(ValueError):
        plot_seed_dots(per, stem, metrics=[])


def test_png_only_writes_no_pdf_and_removes_an_older_one(tmp_path):
    """By default a figure is saved as PNG and PDF; inside figure_formats(pdf=False) as PNG only,
    and the PDF an earlier drawing left under the same stem is removed (no figure older than its
    PNG stays behind); outside the context both files are written again."""
    per = {"dist": [{"oa": 0.6, "ece": 0.05, "ce_distr": 1.0, "kappa": 0.5}]}
    stem = tmp_path / "dots"
    _check_files(plot_seed_dots(per, stem), stem, pdf=True)
    with figure_formats(pdf=False):
        paths = plot_seed_dots(per, stem)
    assert paths == [tmp_path / "dots.png"] and sorted(p.name for p in tmp_path.iterdir()) == ["dots.png"]
    _check_files(paths, stem)
    _check_files(plot_seed_dots(per, stem), stem, pdf=True)


# --- plotted data read back from the figures ----------------------------------------------------

def _bar_heights(container):
    return np.array([b.get_height() for b in container.patches])


def _bar_containers(ax):
    from matplotlib.container import BarContainer

    return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_confusion_panels_hold_the_row_percentages():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 2, 1, 1, 0])
    fig = draw_confusion_matrices({"dist": (labels, labels), "onehot": (labels, preds)}, k=4)
    ax_onehot, ax_dist = fig.axes[:2]                       # regime order, then the colour bar
    img = ax_onehot.images[0].get_array()
    np.testing.assert_allclose(img[:3].filled(np.nan), [[50, 25, 25, 0], [0, 100, 0, 0], [100, 0, 0, 0]])
    assert img.mask[3].all()                                # class without samples: masked
    assert ax_onehot.get_title() == "one-hot  (OA 57.1 %)"     # 4 of 7 correct
    assert ax_dist.get_title() == "distribution  (OA 100.0 %)"
    np.testing.assert_allclose(np.diag(ax_dist.images[0].get_array()[:3]), 100)
    assert sorted(t.get_text() for t in ax_onehot.texts) == sorted(["50", "25", "25", "100", "100"])


def test_voting_confusion_image_and_vote_count():
    fig = draw_voting_confusion(_voting_counts())
    img = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(img[0, :3], [200 / 3, 100 / 3, 0])
    np.testing.assert_allclose(img[2, [2, 6]], [75, 25])
    assert img.mask[1].all()                                 # an original label without votes: blank row
    assert "(7 votes)" in fig.axes[0].get_title()


def test_reliability_bars_gaps_histogram_and_ece():
    # confidences 0.5 (correct, bin 9 of (lo, hi]) and 1.0 (wrong, bin 19)
    p = np.array([[0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    fig = draw_reliability(p, np.array([0, 1]), n_bins=20)
    ax, axh = fig.axes
    acc, gap = _bar_containers(ax)                          # accuracy bars, then gap bars
    np.testing.assert_allclose([b.get_x() + b.get_width() / 2 for b in acc.patches], [0.475, 0.975])
    np.testing.assert_allclose(_bar_heights(acc), [1.0, 0.0])
    np.testing.assert_allclose(_bar_heights(gap), [0.5, 1.0])                # |acc - conf|
    np.testing.assert_allclose([b.get_y() for b in gap.patches], [0.5, 0.0])  # from min(acc, conf)
    hist = _bar_heights(axh.containers[0])
    assert hist[9] == pytest.approx(50) and hist[19] == pytest.approx(50) and hist.sum() == pytest.approx(100)
    assert [t.get_text() for t in ax.texts] == ["ECE = 75.00 %"]
    lines = {ln.get_label(): ln.get_xdata()[0] for ln in axh.lines}
    assert lines["accuracy"] == pytest.approx(0.5) and lines["avg. confidence"] == pytest.approx(0.75)


def test_reliability_grid_panels_and_missing_one(data):
    rng, labels, _ = data
    p = _probs(rng, labels)
    fig = draw_reliability_grid({"dist": {"plain": (p, labels)}, "onehot": {"plain": (p, labels)}}, n_bins=20)
    titles = [a.get_title() for a in fig.axes[::2]]          # (diagram, histogram) per panel
    assert titles == ["one-hot, before TS", "one-hot, after TS", "distribution, before TS",
                      "distribution, after TS"]
    assert fig.axes[2].texts[0].get_text() == "not available"
    ece = compute_metrics(p, labels, np.eye(K)[labels], n_bins=20)["ece"]
    assert fig.axes[0].texts[0].get_text() == f"ECE = {100 * ece:.2f} %"


def test_vote_entropy_bars_heights():
    fig = draw_vote_entropy_bars(np.array([1, 2, 0, 0, 0, 1]), np.array([1, 0, 1, 0, 0, 1]), note="a note")
    urban, non_urban = _bar_containers(fig.axes[0])
    np.testing.assert_allclose(_bar_heights(urban), [25, 50, 0, 0, 0, 25])
    np.testing.assert_allclose(_bar_heights(non_urban), 100 / 3 * np.array([1, 0, 1, 0, 0, 1]))
    assert urban.get_label() == "urban majority (n = 4)" and non_urban.get_label() == "non-urban majority (n = 3)"
    assert "a note" in [t.get_text() for t in fig.texts]


def _hand_bin_metrics(p, y, ent, n_bins):
    """Accuracy and ECE per entropy bin with explicit masks and loops over (lo, hi] confidence bins."""
    edges = np.array(ENTROPY_BIN_EDGES)
    acc, ece = np.full(6, np.nan), np.full(6, np.nan)
    for b in range(6):
        sel = (ent >= edges[b]) & (ent < edges[b + 1])
        if not sel.any():
            continue
        conf, ok = p[sel].max(1), p[sel].argmax(1) == y[sel]
        acc[b] = ok.mean()
        total = 0.0
        for i in range(n_bins):
            lo, hi = i / n_bins, (i + 1) / n_bins
            inb = (conf > lo) & (conf <= hi)
            if inb.any():
                total += inb.sum() * abs(ok[inb].mean() - conf[inb].mean())
        ece[b] = total / sel.sum()
    return acc, ece


def test_metrics_by_entropy_bin_bars_are_seed_means(data):
    rng, labels, ent = data
    seeds = [_probs(rng, labels) for _ in range(2)]
    fig = draw_metrics_by_entropy_bin({"onehot": [(p, labels, ent) for p in seeds]}, n_bins=20)
    hand = [_hand_bin_metrics(p, labels, ent, 20) for p in seeds]                 # the paper's 20 bins
    acc_ax, ece_ax = fig.axes
    for ax, i in ((acc_ax, 0), (ece_ax, 1)):
        vals = 100 * np.array([h[i] for h in hand])
        np.testing.assert_allclose(_bar_heights(_bar_containers(ax)[0]), vals.mean(0))
        segs = ax.containers[0][2][0].get_segments()           # error bar of each bin: mean -+ std
        half = np.array([(sg[1, 1] - sg[0, 1]) / 2 if len(sg) else np.nan for sg in segs])
        np.testing.assert_allclose(half, vals.std(0), atol=1e-9)
    edges = ENTROPY_BIN_EDGES
    counts = [int(((ent >= lo) & (ent < hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    ticks = [t.get_text().split("n=")[1] for t in acc_ax.get_xticklabels()]
    assert [int(t.replace(",", "")) for t in ticks] == counts


def test_hexbin_counts_and_spearman(data):
    from scipy.stats import spearmanr

    rng, labels, ent = data
    p = _probs(rng, labels)
    fig = draw_entropy_hexbin({"dist": (p, ent)})
    ax = fig.axes[0]
    assert ax.collections[0].get_array().sum() == len(labels)       # every image in some hexagon
    pred_ent = -(p * np.log(p)).sum(1)
    rho = spearmanr(pred_ent, ent).statistic
    assert ax.texts[0].get_text() == f"Spearman \u03c1 = {rho:.2f}"


def test_seed_dots_positions_and_means():
    per = {"dist": [{"oa": 0.6, "ece": 0.1}, {"oa": 0.7, "ece": float("nan")}],
           "onehot": [{"oa": 0.5, "ece": 0.2}, {"oa": 0.55, "ece": 0.3}, {"oa": 0.65, "ece": 0.25}]}
    fig = draw_seed_dots(per)
    ax_oa, ax_ece = fig.axes
    assert ax_oa.get_title() == "overall accuracy (\u2191 better)" and ax_ece.get_title() == "ECE (\u2193 better)"
    onehot, dist = ax_oa.collections                          # regime order
    np.testing.assert_allclose(onehot.get_offsets()[:, 0], [0.5, 0.55, 0.65])
    assert (np.abs(onehot.get_offsets()[:, 1] - 1) <= 0.12).all()   # one-hot on the top row
    np.testing.assert_allclose(dist.get_offsets()[:, 0], [0.6, 0.7])
    np.testing.assert_allclose([ln.get_xdata()[0] for ln in ax_oa.lines], [0.5666666666666667, 0.65])
    np.testing.assert_allclose(ax_ece.collections[1].get_offsets()[:, 0], [0.1])   # NaN seed left out
