"""Owns the one decision about an existing run folder before training: a finished run is left
alone, a run with ``checkpoints/last.ckpt`` is resumed (same config; refused without ``resume``),
anything else is a previous attempt killed before its first checkpoint, whose files are cleared
so the run starts clean. ``lczldl train`` and the study's train units both go through here."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from lczldl.config import LczldlConfig, run_sections
from lczldl.errors import RunError
from lczldl.layout import (
    CHECKPOINT_DIR,
    EVAL_ERROR,
    FINISHED,
    HISTORY,
    METRICS,
    METRICS_MC,
    METRICS_TS,
    MLFLOW_DIR,
    PREDICTIONS,
    RUN_CONFIG,
    RUN_INFO,
    TENSORBOARD_DIR,
    checkpoint_path,
    run_status,
)

#: what to do with the run folder
SKIP, RESUME, FRESH = "skip", "resume", "fresh"
#: config keys that may change between a run and its resumption (speed only, or the epoch cap)
RUNTIME_KEYS = {("data", "num_workers"), ("data", "pin_memory"), ("train", "num_threads"),
                ("train", "max_epochs"), ("train", "logger"), ("train", "engine"),
                ("train", "last_checkpoint_epochs"), ("train", "last_checkpoint_minutes")}
#: what a previous attempt may have left in a run folder (cleared before a clean start; anything
#: else in the folder is left alone)
ATTEMPT_FILES = (RUN_INFO, HISTORY, RUN_CONFIG, CHECKPOINT_DIR, PREDICTIONS, METRICS, METRICS_TS,
                 METRICS_MC, EVAL_ERROR, TENSORBOARD_DIR, MLFLOW_DIR)


def plan_run_dir(run_dir: Path, resume: bool, cfg: LczldlConfig) -> str:
    """SKIP (finished), RESUME (last.ckpt and ``resume``) or FRESH; writes nothing.

    Raises RunError for a run with last.ckpt when ``resume`` is False, or when resuming with a
    config that differs from the run's config.yaml in more than :data:`RUNTIME_KEYS`."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return FRESH
    status = run_status(run_dir)
    if status == FINISHED:
        return SKIP
    if checkpoint_path(run_dir, "last").is_file():
        if not resume:
            raise RunError(f"{run_dir}: an earlier run stopped after saving {CHECKPOINT_DIR}/"
                           f"{checkpoint_path(run_dir, 'last').name} (status {status!r}); pass resume=True "
                           "to continue it or delete the folder", params=("resume",))
        check_resume_config(run_dir, cfg)
        return RESUME
    return FRESH


def clear_attempt(run_dir: Path) -> None:
    """Remove what a previous attempt left in ``run_dir`` (:data:`ATTEMPT_FILES`)."""
    for name in ATTEMPT_FILES:
        p = Path(run_dir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _comparable(cfg: dict) -> dict:
    return {s: {k: v for k, v in sec.items() if (s, k) not in RUNTIME_KEYS} if isinstance(sec, dict) else sec
            for s, sec in cfg.items() if s != "study"}


def check_resume_config(run_dir: Path, cfg: LczldlConfig) -> None:
    """RunError naming the first key where ``cfg`` differs from the run's config.yaml (runtime
    keys excepted). A key the run's config.yaml lacks (written before the key existed) counts as
    its default, which is what that run did."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return
    old = _comparable(yaml.safe_load(path.read_text()) or {})
    new = _comparable(run_sections(cfg))
    defaults = _comparable(run_sections(LczldlConfig()))
    for s in sorted(set(old) | set(new)):
        a, b = old.get(s) or {}, new.get(s) or {}
        if isinstance(a, dict) and isinstance(defaults.get(s), dict):
            a = {**defaults[s], **a}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                raise RunError(f"{run_dir}: cannot resume with a different config ({s}.{k}: "
                               f"{a.get(k)!r} in {RUN_CONFIG}, now {b.get(k)!r}); use the run's config "
                               "or another out", params=("out",))
