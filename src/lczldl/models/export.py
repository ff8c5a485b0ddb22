"""Owns ``lczldl export-weights``: one self-describing weights file from a run (its best
checkpoint), a checkpoint, or another model file (docs/weights.md).

From a run folder (RUNS/REGIME/seedN, files in docs/architecture.md) the record gets: the regime and
seed, the classes and bands of its config, the store's path and checksum (run.json's
``data_checksum``: sha256 of the store's manifest.json), the fitted temperature (metrics_ts.json)
and, where the run was evaluated with conformal sets, their thresholds (``qhat`` of every set in
beyond_{plain,temperature,mc_dropout}.json, calibrated on the store's validation split). The run's
files are read as files; nothing is recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lczldl import layout
from lczldl.errors import ModelError, RunError
from lczldl.fileio import file_sha256
from lczldl.models.io import load_model, save_model
from lczldl.models.weights_file import default_classes

#: methods whose beyond file may hold conformal thresholds, in the evaluation's order
CONFORMAL_METHODS = ("plain", "temperature", "mc_dropout")


def locate(source: str | Path) -> tuple[Path | None, Path]:
    """(run folder or None, model file) of what ``export-weights`` was given: a run folder (its
    best checkpoint), a checkpoint inside RUN/checkpoints/, or any other model file."""
    source = Path(source)
    if source.is_dir():
        if layout.read_run_info(source) is None:
            raise RunError(f"{source}: a folder without run.json; pass a run folder (RUNS/REGIME/seedN) "
                           "or a model file")
        ckpt = layout.checkpoint_path(source, "best")
        if not ckpt.is_file():
            raise RunError(f"{source}: no {layout.CHECKPOINT_DIR}/{layout.BEST_CKPT}; finish training the run")
        return source, ckpt
    if not source.is_file():
        raise ModelError(f"{source}: not found; pass a run folder or a model file")
    run = source.parent.parent
    if source.parent.name == layout.CHECKPOINT_DIR and layout.read_run_info(run) is not None:
        return run, source
    return None, source


def _json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def conformal_thresholds(run: Path) -> dict[str, Any] | None:
    """{method: {set name: {score, level, qhat}}} of the run's beyond files (None when none holds
    sets). A set of image x is {y : s(x, y) <= qhat} with the score s of docs/metrics.md."""
    out: dict[str, Any] = {}
    for method in CONFORMAL_METHODS:
        obj = _json(layout.beyond_path(run, method)) or {}
        sets = (obj.get("detail") or {}).get("sets") or {}
        found = {name: {k: s.get(k) for k in ("score", "level", "qhat")}
                 for name, s in sets.items() if isinstance(s, dict) and "qhat" in s}
        if found:
            out[method] = found
    return out or None


def run_record(run: Path, ckpt: Path, num_classes: int) -> dict[str, Any]:
    """The record fields a run contributes (module docstring)."""
    info = layout.read_run_info(run) or {}
    model_cfg = (info.get("config") or {}).get("model") or {}
    ts = _json(run / layout.METRICS_TS) or {}
    record: dict[str, Any] = {
        "name": None, "regime": info.get("regime"), "seed": info.get("seed"),
        "classes": default_classes(num_classes), "bands": model_cfg.get("bands"),
        "store": {"path": info.get("data"), "checksum": info.get("data_checksum"),
                  "checksum_of": "sha256 of the store's manifest.json"},
        "temperature": ts.get("temperature"),
        "temperature_fit": ({"file": layout.METRICS_TS, **{k: (ts.get("meta") or {}).get(k)
                                                          for k in ("target", "n_val", "fitted_on")}}
                            if ts.get("temperature") is not None else None),
        "conformal": conformal_thresholds(run),
        "source": {"kind": "run", "run": str(run.resolve()), "checkpoint": ckpt.name,
                   "checkpoint_sha256": file_sha256(ckpt), "status": info.get("status"),
                   "best_epoch": info.get("best_epoch"), "versions": info.get("versions")},
        "citation": None, "licence": None,
    }
    if record["conformal"] is not None:
        record["conformal_calibration"] = "the store's validation split; set = {y : score(x, y) <= qhat}"
    return record


def export_weights(source: str | Path, out: str | Path, trust: bool = False) -> Path:
    """Write ``out``, an lczldl weights file of ``source`` (a run folder, a checkpoint or a model
    file) with its record (module docstring). ``trust``: see :func:`lczldl.models.io.load_model`."""
    run, ckpt = locate(source)
    model = load_model(ckpt, trust=trust)
    meta = dict(model.meta)
    if run is not None:
        meta.update(run_record(run, ckpt, int(model.model_kwargs["num_classes"])))
    elif not meta:
        meta = {"source": {"kind": "checkpoint", "checkpoint": str(Path(ckpt).resolve()),
                           "checkpoint_sha256": file_sha256(ckpt)}}
    return save_model(model, out, meta)
