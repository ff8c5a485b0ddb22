"""The study's figures as pure functions, one module per figure family (``confusion``,
``entropy``, ``reliability``, ``seeds``; import from the module that owns a name): arrays in, a
Figure (``draw_*``) or ``out_stem``.png/.pdf (``plot_*``, paths returned) out.

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
