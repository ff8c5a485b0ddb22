"""The study's figures as pure functions, one module per figure family: arrays in, a Figure
(``draw_*``) or ``out_stem``.png/.pdf (``plot_*``, paths returned) out.

Each plot has a pure data function beside it (``confusion_percent``, ``reliability_data``, ...)
that returns exactly what is drawn, computed with the evaluation's own functions; tests check
those numbers and read them back from the drawn figure.

Conventions: class indices 0..9 <-> LCZ 1..10; probabilities (N, K) rows sum to 1; entropies in
nats; vote-entropy bins are the paper's :data:`lczldl.distributions.ENTROPY_BIN_EDGES`, left-closed
[lo, hi) as in the prepared store's manifest. Reliability diagrams bin the top-label confidence with
the evaluation's default convention (:func:`lczldl.evaluation.calibration.calibration_bins`,
``binning="right"``: equal-width bins (lo, hi], confidence 0 dropped), so the ECE printed on a
diagram is the ECE of ``metrics.json``.
"""

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
from lczldl.viz.figures.seeds import SEED_DOT_METRICS, draw_seed_dots, plot_seed_dots

__all__ = [
    "SEED_DOT_METRICS", "confusion_percent", "draw_confusion_matrices", "draw_entropy_hexbin",
    "draw_metrics_by_entropy_bin", "draw_reliability", "draw_reliability_grid", "draw_seed_dots",
    "draw_vote_entropy_bars", "draw_voting_confusion", "metrics_by_entropy_bin", "plot_confusion_matrices",
    "plot_entropy_hexbin", "plot_metrics_by_entropy_bin", "plot_reliability", "plot_reliability_grid",
    "plot_seed_dots", "plot_vote_entropy_bars", "plot_voting_confusion", "reliability_data",
    "vote_entropy_shares", "voting_confusion_percent",
]
