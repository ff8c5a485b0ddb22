"""Evaluation: metrics (names in :mod:`~lczldl.evaluation.registry`), calibration (temperature /
vector scaling), the predictor (MC dropout, ensembles), the evaluation files, summaries.

Light imports only (numpy; scipy / torch are imported inside the functions that need them).
"""

from lczldl.evaluation.calibration import adaptive_ece, calibration_bins, classwise_ece, ece_mce, sce_seed
from lczldl.evaluation.metrics import METRIC_KEYS, PAPER_METRICS, compute_metrics, validate
from lczldl.evaluation.temperature import (
    apply_temperature,
    apply_vector_scaling,
    fit_temperature,
    fit_vector_scaling,
)

__all__ = [
    "METRIC_KEYS", "PAPER_METRICS", "adaptive_ece", "apply_temperature", "apply_vector_scaling",
    "calibration_bins", "classwise_ece", "compute_metrics", "ece_mce", "fit_temperature",
    "fit_vector_scaling", "sce_seed", "validate",
]
