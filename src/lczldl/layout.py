"""Owns the on-disk layout: every folder and file name of a prepared store, a run folder, a
study folder and a map folder, the format tags and versions, and the one reader of a run's
status. Path functions only; no module outside this one spells these names.

Layouts (documented in docs/architecture.md)::

    STORE/manifest.json  STORE/{train,val,test}/{image,label,distribution,...}.npy
    RUNS/REGIME/seedN/{config.yaml, run.json, metrics.csv, checkpoints/{best,last}.ckpt,
                       predictions.npz, metrics.json, metrics_ts.json, metrics_mc.json,
                       beyond_{plain,temperature,mc_dropout}.json}
    EVAL/ensemble/REGIME/{predictions.npz, metrics.json, beyond_ensemble.json}
    STUDY/{study.json, config.yaml, store/, runs/, units/, logs/, ensemble/REGIME/,
           summary.csv, summary.md, paired.csv, figures/, report.html, report.md}
    STUDY/budget/{budget.csv, k<k>/{runs/REGIME/seedN, ensemble/REGIME/, summary.csv, summary.md,
                  paired.csv}}     (only with a vote-budget grid: lczldl study --vote-budget)
    MAP/{lcz.tif, probability.tif, entropy.tif, confidence.tif, preview.png, predict.json,
         .partial/{state.json, block_NNNNN.npz} (while the map is not complete)}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- prepared store
STORE_FORMAT = "lczldl-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
IMAGE = "image"
#: temp folders of a prepare in progress: OUT.tmp-<pid>-XXXX beside OUT (removed when their process is gone)
STORE_TMP_INFIX = ".tmp-"
#: marker a completed ``lczldl data synth`` call of the demo leaves in its raw folder
TWIN_MARKER = ".lczldl-twin.json"

# ---------------------------------------------------------------- run folder
#: a run folder's name is RUN_PREFIX + its seed (seed3); :func:`run_dir` writes it, :func:`seed_of` reads it
RUN_PREFIX = "seed"
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
#: a run's / an ensemble's beyond-the-paper file per method: beyond_plain.json, beyond_temperature.json,
#: beyond_mc_dropout.json (RUN), beyond_ensemble.json (EVAL/ensemble/REGIME): headline numbers,
#: "detail" (per class, per vote-entropy bin, risk-coverage curve) and "meta"
BEYOND_PREFIX = "beyond_"
EVAL_ERROR = "eval_error.txt"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"

#: run.json statuses
RUNNING, FINISHED, FAILED = "running", "finished", "failed"

# ---------------------------------------------------------------- study folder
STUDY_FORMAT = "lczldl-study"
STUDY_VERSION = 1
STUDY_INFO = "study.json"
STUDY_CONFIG = "config.yaml"
STUDY_LOCK = ".lock"
STUDY_STORE = "store"
STUDY_RUNS = "runs"
STUDY_UNITS = "units"
STUDY_LOGS = "logs"
STUDY_SLURM = "slurm"
STUDY_SUBMITIT = "submitit"
MARKER_SUFFIX = ".json"
SPEC_SUFFIX = ".spec.json"
LOG_SUFFIX = ".log"
ENSEMBLE_DIR = "ensemble"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
PAIRED_CSV = "paired.csv"
FIGURES_DIR = "figures"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
#: the vote-budget grid: STUDY/budget/k<k>/ holds the runs trained on k votes per image (runs/) and
#: their evaluation (ensemble/, summary.csv, ...); STUDY/budget/budget.csv the table over k
BUDGET_DIR = "budget"
BUDGET_K_PREFIX = "k"
BUDGET_CSV = "budget.csv"

# ---------------------------------------------------------------- map folder
MAP_LCZ = "lcz.tif"
MAP_PROBABILITY = "probability.tif"
MAP_ENTROPY = "entropy.tif"
MAP_CONFIDENCE = "confidence.tif"
#: the map's GeoTIFFs, written together (``lczldl.maps.outputs.write_map``)
MAP_GEOTIFFS: tuple[str, ...] = (MAP_LCZ, MAP_PROBABILITY, MAP_ENTROPY, MAP_CONFIDENCE)
MAP_PREVIEW = "preview.png"
MAP_RECORD = "predict.json"
#: a map in progress: its finished chunks and the state they were made with
MAP_PARTIAL = ".partial"
MAP_PARTIAL_STATE = "state.json"


def manifest_path(store: str | Path) -> Path:
    """STORE/manifest.json."""
    return Path(store) / MANIFEST


def split_dir(store: str | Path, split: str) -> Path:
    """STORE/SPLIT/ (one .npy per array)."""
    return Path(store) / split


def array_path(store: str | Path, split: str, name: str) -> Path:
    """STORE/SPLIT/NAME.npy (``name`` is a column such as "label", or "image")."""
    return split_dir(store, split) / f"{name}.npy"


def run_dir(runs: str | Path, regime: str, seed: int) -> Path:
    """RUNS/REGIME/seedN."""
    return Path(runs) / regime / f"{RUN_PREFIX}{int(seed)}"


def seed_of(name: str) -> int | None:
    """The seed of a run folder's name as :func:`run_dir` writes it ("seed3" -> 3); None for a
    name that is not a run folder ("seedx", "logs")."""
    m = re.fullmatch(rf"{RUN_PREFIX}([0-9]+)", name)
    return int(m.group(1)) if m else None


def checkpoint_path(run: str | Path, which: str = "best") -> Path:
    """RUN/checkpoints/best.ckpt or last.ckpt (``which`` is "best" or "last")."""
    if which not in ("best", "last"):
        raise ValueError(f"checkpoint_path: which must be 'best' or 'last', not {which!r}")
    return Path(run) / CHECKPOINT_DIR / (BEST_CKPT if which == "best" else LAST_CKPT)


def beyond_path(folder: str | Path, method: str) -> Path:
    """FOLDER/beyond_METHOD.json (a run folder, or EVAL/ensemble/REGIME for the ensemble)."""
    return Path(folder) / f"{BEYOND_PREFIX}{method}.json"


def ensemble_dir(out: str | Path, regime: str) -> Path:
    """EVAL/ensemble/REGIME (ensemble predictions.npz and metrics.json)."""
    return Path(out) / ENSEMBLE_DIR / regime


def study_run_dir(study: str | Path, regime: str, seed: int, budget: int | None = None) -> Path:
    """STUDY/runs/REGIME/seedN (STUDY/budget/k<k>/runs/REGIME/seedN for vote budget ``budget``)."""
    return run_dir(study_runs(study, budget), regime, seed)


def budget_dir(study: str | Path, k: int) -> Path:
    """STUDY/budget/k<k>: the runs trained on k votes per image and their evaluation files."""
    return Path(study) / BUDGET_DIR / f"{BUDGET_K_PREFIX}{int(k)}"


def budget_table_path(study: str | Path) -> Path:
    """STUDY/budget/budget.csv: the metrics against the vote budget k."""
    return Path(study) / BUDGET_DIR / BUDGET_CSV


def study_runs(study: str | Path, budget: int | None = None) -> Path:
    """STUDY/runs, or STUDY/budget/k<k>/runs for the runs of vote budget ``budget``."""
    return (Path(study) if budget is None else budget_dir(study, budget)) / STUDY_RUNS


def marker_path(study: str | Path, uid: str) -> Path:
    """STUDY/units/<unit-id>.json, the unit's completion marker."""
    return Path(study) / STUDY_UNITS / f"{uid}{MARKER_SUFFIX}"


def spec_path(study: str | Path, uid: str) -> Path:
    """STUDY/units/<unit-id>.spec.json, what the unit was given."""
    return Path(study) / STUDY_UNITS / f"{uid}{SPEC_SUFFIX}"


def log_path(study: str | Path, uid: str) -> Path:
    """STUDY/logs/<unit-id>.log, the unit's stdout/stderr."""
    return Path(study) / STUDY_LOGS / f"{uid}{LOG_SUFFIX}"


def map_block_path(out: str | Path, block: int) -> Path:
    """MAP/.partial/block_NNNNN.npz, the saved chunk ``block`` of a map in progress."""
    return Path(out) / MAP_PARTIAL / f"block_{int(block):05d}.npz"


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
