"""Beyond-the-paper figures: each writes PNG + PDF from arrays, and draws the numbers it is given
(read back from the figure)."""

from __future__ import annotations

import numpy as np
import pytest

from lczldl.viz import beyond as V

REGIMES = ["onehot", "dist", "agg_mace"]          # agg_mace: unknown to the style, fallback colour


@pytest.fixture
def captured(monkeypatch):
    """Keep the figure each plot function saves."""
    figs = []
    real = V.save_figure

    def keep(fig, stem):
        figs.append(fig)
        return real(fig, stem)

    monkeypatch.setattr(V, "save_figure", keep)
    return figs


def _check_files(paths, stem):
    assert [p.name for p in paths] == [stem.name + ".png", stem.name + ".pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_target_comparison(tmp_path, captured):
    est = {"ce_distr": np.array([[0.6, 0.55, 0.66], [0.5, 0.45, 0.52], [0.55, np.nan, np.nan]]),
           "ece": np.array([[0.05, 0.03, 0.07], [0.03, 0.02, 0.05], [0.04, 0.03, 0.06]]),
           "oa": np.array([[0.8, 0.78, 0.83], [0.82, 0.8, 0.84], [np.nan, np.nan, np.nan]])}
    _check_files(V.plot_target_comparison(REGIMES, est, tmp_path / "t"), tmp_path / "t")
    ece_ax = captured[0].axes[1]
    xs = [float(c.lines[0].get_xdata()[0]) for c in ece_ax.containers]   # errorbar data points
    assert xs == pytest.approx([5.0, 3.0, 4.0])                          # ECE drawn in %, in order


def test_set_size_by_entropy(tmp_path, captured):
    size = {r: np.array([1.0, 1.2, 1.5, 2.0, 2.5, np.nan]) + i * 0.1 for i, r in enumerate(REGIMES)}
    cov = {r: np.array([0.95, 0.9, 0.85, 0.9, 0.92, np.nan]) for r in REGIMES}
    stem = tmp_path / "s"
    paths = V.plot_set_size_by_entropy(size, cov, stem, level=0.9, plausible_size=np.array([1, 1.2, 1.6, 2, 2.2, 2.5]),
                                       counts=np.array([400, 300, 100, 50, 7, 0]),
                                       lo={"onehot": size["onehot"] - 0.1}, hi={"onehot": size["onehot"] + 0.1})
    _check_files(paths, stem)
    ax_c = captured[0].axes[1]
    drawn = [np.asarray(line.get_ydata(), dtype=float) for line in ax_c.lines]
    assert any(np.allclose(y[:5], [95, 90, 85, 90, 92]) for y in drawn)   # coverage in %
    assert any(np.allclose(y, 90.0) for y in drawn)                       # the target line


def test_coverage_per_class(tmp_path, captured):
    cov = {r: np.linspace(0.8, 0.98, 10) for r in REGIMES}
    cov["dist"][3] = np.nan                                              # class absent from test
    stem = tmp_path / "c"
    _check_files(V.plot_coverage_per_class(cov, stem, level=0.95, counts=np.arange(10) + 1), stem)
    heights = [p.get_height() for p in captured[0].axes[0].patches]
    assert len(heights) == 30 and heights[0] == pytest.approx(80.0)


def test_risk_coverage(tmp_path, captured):
    from lczldl.evaluation.selective import aurc, risk_coverage_curve

    rng = np.random.default_rng(0)
    conf = rng.random(200)
    correct = rng.random(200) < conf
    curve = risk_coverage_curve(conf, correct)
    stem = tmp_path / "r"
    _check_files(V.plot_risk_coverage({"onehot": curve}, stem, aurc={"onehot": aurc(conf, correct)[0]}), stem)
    line = captured[0].axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), 100 * curve[1])
    assert "AURC" in line.get_label()


def test_uncertainty_signals(tmp_path, captured):
    auroc = {"onehot": {"max_prob": 0.8, "entropy": 0.78},
             "dist": {"max_prob": 0.82, "entropy": 0.8, "mutual_info": 0.7, "disagreement": 0.75}}
    spear = {"onehot": {"max_prob": 0.5, "entropy": 0.52},
             "dist": {"max_prob": 0.6, "entropy": 0.62, "mutual_info": 0.3, "disagreement": 0.4}}
    stem = tmp_path / "u"
    paths = V.plot_uncertainty_signals(auroc, spear, stem, auroc_ci={"dist": {"max_prob": (0.79, 0.85)}})
    _check_files(paths, stem)
    labels = [t.get_text() for t in captured[0].axes[0].get_yticklabels()]
    assert labels == [V.SIGNAL_LABELS[s] for s in ("max_prob", "entropy", "mutual_info", "disagreement")]
