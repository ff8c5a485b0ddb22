"""Owns the on-disk layout: every folder and file name of a prepared store, a run folder, a
study folder and a map folder, the format tags and versions, and the one reader of a run's
status. Path functions only; no module outside this one spells these names.

Layouts (documented in docs/architecture.md)::

    STORE/manifest.json  STORE/{train,val,test}/{image,label,distribution,...}.npy
    RUNS/REGIME/seedN/{config.yaml, run.json, metrics.csv, checkpoints/{best,last}.ckpt,
                       predictions.npz, metrics.json, metrics_ts.json, metrics_mc.json}
    STUDY/{study.json, config.yaml, store/, runs/, units/, logs/, ensemble/REGIME/,
           summary.csv, summary.md, paired.csv, figures/, report.html, report.md}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- prepared store
STORE_FORMAT = "lczldl-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
IMAGE_FILE = "image.npy"

# ---------------------------------------------------------------- run folder
RUN_INFO = "run.json"
RUN_CONFIG = "config.yaml"
HISTORY = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
BEST_CKPT = "best.ckpt"
LAST_CKPT = "last.ckpt"
PREDICTIONS = "predictions.npz"
METRICS = "metrics.json"
METRICS_TS = "metrics_ts.json"
METRICS_MC = "metrics_mc.json"
EVAL_ERROR = "eval_error.txt"

#: run.json statuses
RUNNING, FINISHED, FAILED = "running", "finished", "failed"

# ---------------------------------------------------------------- study folder
STUDY_FORMAT = "lczldl-study"
STUDY_INFO = "study.json"
STUDY_CONFIG = "config.yaml"
STUDY_LOCK = ".lock"
STUDY_STORE = "store"
STUDY_RUNS = "runs"
STUDY_UNITS = "units"
STUDY_LOGS = "logs"
ENSEMBLE_DIR = "ensemble"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
PAIRED_CSV = "paired.csv"
FIGURES_DIR = "figures"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"


def manifest_path(store: str | Path) -> Path:
    """STORE/manifest.json."""
    return Path(store) / MANIFEST


def split_dir(store: str | Path, split: str) -> Path:
    """STORE/SPLIT/ (one .npy per array)."""
    return Path(store) / split


def run_dir(runs: str | Path, regime: str, seed: int) -> Path:
    """RUNS/REGIME/seedN."""
    return Path(runs) / regime / f"seed{int(seed)}"


def checkpoint_path(run: str | Path, which: str = "best") -> Path:
    """RUN/checkpoints/best.ckpt or last.ckpt (``which`` is "best" or "last")."""
    if which not in ("best", "last"):
        raise ValueError(f"checkpoint_path: which must be 'best' or 'last', not {which!r}")
    return Path(run) / CHECKPOINT_DIR / (BEST_CKPT if which == "best" else LAST_CKPT)


def ensemble_dir(out: str | Path, regime: str) -> Path:
    """EVAL/ensemble/REGIME (ensemble predictions.npz and metrics.json)."""
    return Path(out) / ENSEMBLE_DIR / regime


def read_run_info(run: str | Path) -> dict[str, Any] | None:
    """RUN/run.json as a dict, or None when it is missing or unreadable (a run being created)."""
    try:
        info = json.loads((Path(run) / RUN_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def run_status(run: str | Path) -> str | None:
    """The run's status (running | finished | failed) from run.json, None when there is none."""
    info = read_run_info(run)
    return None if info is None else info.get("status")
