"""Owns ``lczldl evaluate --weights/--checkpoint``: one model (a registry entry's weights file, an
exported file, a run checkpoint) on a store's test split, with the project's metrics
(:func:`lczldl.evaluation.metrics.compute_metrics`) and, when asked, temperature scaling fitted on
the store's validation split (:func:`lczldl.evaluation.temperature.fit_temperature`).

Classes: the model's class i names LCZ ``classes[i]`` (its weights file's record, else LCZ i + 1);
the store's class j names LCZ ``store classes[j]``. Only the images whose label the model can name
are evaluated (a 10-class model on a 17-class So2Sat LCZ42 store: the images of LCZ 1-10); the
command says so in one line and ``metrics.json``'s meta records it. Vote distributions join the
metrics only when the store has votes and the model names every class they spread over.

Files in OUT (names from :mod:`lczldl.layout`, written atomically): ``predictions.npz`` (probs,
log_probs, labels, distributions when used, rows: the evaluated rows of the split),
``metrics.json`` (temperature 1) and, with ``fit_temperature``, ``metrics_ts.json`` (+
``temperature``), as a run's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.config import EvaluationConfig
from lczldl.constants import BANDS, N_URBAN
from lczldl.data.store import open_store
from lczldl.errors import DataError
from lczldl.evaluation import predictions as P
from lczldl.evaluation.files import save_predictions, write_metrics
from lczldl.evaluation.metrics import compute_metrics, per_class_metrics
from lczldl.evaluation.predictor import predict_log_probs, probs_from_log_probs
from lczldl.evaluation.temperature import apply_temperature, fit_temperature
from lczldl.fileio import file_sha256
from lczldl.regimes import REGIMES

#: images per forward pass
BATCH = 512


def label_map(store_cls: Sequence[int], model_cls: Sequence[int]) -> np.ndarray:
    """(K_store,) int64: the model's class index of each store class, -1 where the model has none."""
    where = {int(c): i for i, c in enumerate(model_cls)}
    return np.array([where.get(int(c), -1) for c in store_cls], dtype=np.int64)


def nameable(labels: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, model labels) of the images whose store label the model can name."""
    model_labels = mapping[np.asarray(labels, dtype=np.int64)]
    rows = np.flatnonzero(model_labels >= 0)
    return rows, model_labels[rows]


def subset_note(model_cls: Sequence[int], store_cls: Sequence[int], n: int, total: int, split: str) -> str | None:
    """One line when only ``n`` of ``total`` images of ``split`` are evaluated (None when all are)."""
    if n == total:
        return None
    from lczldl.models.classes import lcz_codes  # deferred: torch

    return (f"a {len(model_cls)}-class model (LCZ {lcz_codes(model_cls)}) on a {len(store_cls)}-class store: "
            f"evaluated on the {n:,} of {total:,} {split} images whose label it can name "
            f"({total - n:,} left out)")


def _distributions(arrays: Any, rows: np.ndarray, model_cls: Sequence[int]) -> np.ndarray | None:
    """(n, K_model) vote distributions of ``rows`` in the model's class order, or None when the store
    has none or they spread over a class the model does not name (urban LCZ 1-10)."""
    dist = getattr(arrays, "distribution", None)
    mapping = label_map(range(1, N_URBAN + 1), model_cls)
    if dist is None or (mapping < 0).any():
        return None
    out = np.zeros((len(rows), len(model_cls)), dtype=np.float32)
    out[:, mapping] = np.asarray(dist)[rows]
    return out


def _images(arrays: Any, rows: np.ndarray, bands: Sequence[str] | None) -> Iterator[np.ndarray]:
    """uint16 batches (B, C, 32, 32) of ``rows`` with the model's bands (the predictor scales them)."""
    idx = None if not bands or list(bands) == list(BANDS) else [BANDS.index(b) for b in bands]
    for i in range(0, len(rows), BATCH):
        x = arrays.image.read(rows[i:i + BATCH])
        yield x if idx is None else x[:, idx]


def _check_bands(bands: Sequence[str] | None, in_channels: int, where: str) -> None:
    bad = [b for b in bands or () if b not in BANDS]
    if bad or (bands and len(bands) != in_channels) or (not bands and in_channels != len(BANDS)):
        raise DataError(f"{where}: the model takes {in_channels} bands ({bands}), which a store's "
                        f"{', '.join(BANDS)} cannot give")


def _ts_target(arrays: Any, rows: np.ndarray, labels: np.ndarray, regime: str | None,
               model_cls: Sequence[int]) -> tuple[np.ndarray, str]:
    """Validation target of temperature scaling and its kind: the regime's (registry) when the store
    can give it in the model's classes, else the one-hot labels."""
    kind = REGIMES[regime].ts_target if regime in REGIMES else "onehot"
    if kind == "distribution":
        dist = _distributions(arrays, rows, model_cls)
        if dist is not None:
            return dist.astype(np.float64) / np.maximum(dist.sum(axis=1, keepdims=True), 1e-12), kind
    return labels, "onehot"


def evaluate_model(model_path: Path, data: Path, out: Path, evaluation: EvaluationConfig, *,
                   fit_temp: bool = False, trust: bool = False, label: str | None = None,
                   say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate the model in ``model_path`` on the test split of the store ``data`` into ``out``
    (module docstring); ``label`` names it in the outputs (a registry name). Returns
    {"metrics", "metrics_ts" (or None), "temperature", "meta"}."""
    from lczldl.models.classes import model_classes  # deferred: torch
    from lczldl.models.io import load_model  # deferred: torch

    model_path, out = Path(model_path), Path(out)
    model = load_model(model_path, trust=trust)
    store = open_store(Path(data))
    m_cls, s_cls = model_classes(model), store.classes
    bands = (getattr(model, "meta", None) or {}).get("bands")
    _check_bands(bands, int(model.model_kwargs["in_channels"]), str(model_path))
    mapping = label_map(s_cls, m_cls)
    test = store.split("test")
    rows, labels = nameable(test.label, mapping)
    if len(rows) == 0:
        raise DataError(f"{data}: no test image has a label the model can name (model LCZ {m_cls}, "
                        f"store LCZ {s_cls}); evaluate it on a store with those classes")
    note = subset_note(m_cls, s_cls, len(rows), test.n, "test")
    if note and say:
        say(f"note: {note}")
    lp = predict_log_probs(model, _images(test, rows, bands))
    dist = _distributions(test, rows, m_cls)
    where = str(out / layout.PREDICTIONS)
    regime = (getattr(model, "meta", None) or {}).get("regime")
    meta: dict[str, Any] = {
        "n_bins": evaluation.n_bins, "binning": "right", "n": int(len(rows)), "split": "test",
        "n_split": int(test.n), "classes": m_cls, "store_classes": s_cls, "subset_note": note,
        "model": label or str(model_path), "model_file": str(model_path.resolve()),
        "model_sha256": file_sha256(model_path), "regime": regime,
        "store": str(store.path), "store_checksum": file_sha256(layout.manifest_path(store.path)),
        "distributions": dist is not None, "temperature": 1.0}
    pred = {P.PROBS: probs_from_log_probs(lp), P.LOG_PROBS: lp, P.LABELS: labels, "rows": rows}
    if dist is not None:
        pred[P.DISTRIBUTIONS] = dist
    metrics = compute_metrics(pred[P.PROBS], labels, dist, n_bins=evaluation.n_bins, where=where)
    result: dict[str, Any] = {"metrics": metrics, "metrics_ts": None, "temperature": 1.0, "meta": meta}
    if fit_temp:
        val = store.split("val")
        vrows, vlabels = nameable(val.label, mapping)
        if len(vrows) == 0:
            raise DataError(f"{data}: no validation image has a label the model can name; cannot fit a temperature")
        vlp = predict_log_probs(model, _images(val, vrows, bands))
        target, kind = _ts_target(val, vrows, vlabels, regime, m_cls)
        temp = fit_temperature(vlp, target)
        pred.update({P.VAL_LOG_PROBS: vlp, P.VAL_LABELS: vlabels, "val_rows": vrows})
        ts = compute_metrics(apply_temperature(lp, temp), labels, dist, n_bins=evaluation.n_bins, where=where)
        result.update(metrics_ts=ts, temperature=temp)
        write_metrics(out / layout.METRICS_TS, ts,
                      {**meta, "temperature": temp, "target": kind, "n_val": int(len(vrows)),
                       "val_subset_note": subset_note(m_cls, s_cls, len(vrows), val.n, "validation"),
                       "fitted_on": "val log(mean softmax)"}, temperature=temp)
    save_predictions(out / layout.PREDICTIONS, pred)
    write_metrics(out / layout.METRICS, metrics, meta,
                  per_class=per_class_metrics(labels, pred[P.PROBS].argmax(axis=1), len(m_cls)))
    return result
