"""Owns reading and writing the evaluation's files (names from :mod:`lczldl.layout`): a run's or an
ensemble's predictions.npz (its keys: :mod:`lczldl.evaluation.predictions`) and its metrics*.json
(metrics, then extra numbers, then a "meta" object), and whether such a file is still fresh. Writers are atomic (:mod:`lczldl.fileio`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from lczldl.errors import RunError
from lczldl.evaluation.verdict import COLUMNS
from lczldl.fileio import atomic_write_bytes, atomic_write_json


def save_predictions(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed .npz at ``path`` (atomic)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_predictions(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a predictions.npz (only ``keys`` that it holds, when given); RunError (one
    line) when it is missing or unreadable."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files if keys is None or k in keys}
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: missing or unreadable predictions ({exc}); run `lczldl evaluate` "
                       "on this run") from None


def write_metrics(path: Path, metrics: dict[str, float], meta: dict[str, Any], **extra: Any) -> Path:
    """metrics*.json: the metrics, then ``extra`` (e.g. temperature), then ``"meta"`` (atomic,
    NaN written as null)."""
    return atomic_write_json(path, {**metrics, **extra, "meta": meta})


def read_json_object(path: Path, remedy: str = "delete it and evaluate again") -> dict[str, Any] | None:
    """The JSON object in ``path`` (a metrics file, study.json), None when it is missing; RunError
    (one line, ending in ``remedy``) when it is not a valid JSON object."""
    if not Path(path).is_file():
        return None
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc}); {remedy}") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: expected a JSON object; {remedy}")
    return obj


def numeric(obj: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics object as floats (null -> NaN); nested objects, strings and
    booleans are left out."""
    return {k: (float("nan") if v is None else float(v)) for k, v in obj.items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))}


def is_fresh(path: Path, ref: Path, **meta: Any) -> bool:
    """``path`` exists, is not older than ``ref`` and its "meta" holds the given values."""
    path = Path(path)
    if not path.is_file() or path.stat().st_mtime < Path(ref).stat().st_mtime:
        return False
    try:
        got = json.loads(path.read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):
        return False
    return all(got.get(k) == v for k, v in meta.items())


def read_verdict(path: Path) -> list[dict[str, Any]] | None:
    """Rows of a verdict.csv (:data:`lczldl.evaluation.verdict.COLUMNS`; numbers as floats, empty
    cells NaN, n_pairs an int); None when it is missing or has other columns."""

    if not Path(path).is_file():
        return None
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or tuple(rows[0]) != COLUMNS:
        return None
    nums = ("mean_diff", "ci_low", "ci_high", "p", "p_holm")
    return [{k: (float(v) if v else float("nan")) if k in nums else (int(v) if k == "n_pairs" else v)
             for k, v in r.items()} for r in rows]
