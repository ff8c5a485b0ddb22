"""Evaluation: run folders -> predictions -> numbers. Import from the module that owns a name:
``predictor`` (models over images), ``runs`` / ``ensemble`` (per run, per regime), ``metrics``,
``calibration``, ``temperature`` (temperature / vector scaling), ``conformal``,
``conformal_votes``, ``selective``, ``beyond``, ``intervals``, ``registry`` (every metric once),
``summary``, ``files``, ``predictions`` (the schema of predictions.npz).
"""
