"""Owns what a training run records while it runs: the per-epoch history (metrics.csv and
run.json, :class:`History`), the atomic ``last.ckpt`` and its cadence (:class:`LastCheckpoint`,
:func:`last_checkpoint_due`: every ``train.last_checkpoint_epochs`` epochs, at least
``train.last_checkpoint_minutes`` apart, and after the final epoch) and the Keras-style early
stopping / best checkpoint on the validation loss."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from lczldl.fileio import atomic_path, atomic_write_json, atomic_write_text
from lczldl.layout import HISTORY, RUN_INFO, checkpoint_path

CSV_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "val_acc", "train_seconds",
              "train_samples_per_second")


def summarize(rows: list[dict]) -> dict[str, Any]:
    """run.json fields from the per-epoch rows: epochs, best epoch / val loss, mean throughput
    over the epochs after the first (the first pays for warm-up)."""
    if not rows:
        return {"epochs": 0, "best_epoch": None, "best_val_loss": None, "train_samples_per_second": None}
    best = min(rows, key=lambda r: (r["val_loss"] if math.isfinite(r["val_loss"]) else math.inf, r["epoch"]))
    speeds = [r["train_samples_per_second"] for r in (rows[1:] or rows)]
    return {"epochs": len(rows), "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
            "train_samples_per_second": round(sum(speeds) / len(speeds), 1)}


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_metrics_csv(path: Path) -> list[dict]:
    """metrics.csv -> rows with numbers (epoch int, others float)."""
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def _callback_base():
    from lightning.pytorch.callbacks import Callback

    return Callback


class History(_callback_base()):
    """Per-epoch rows -> metrics.csv and run.json (rank 0). Its rows travel in the checkpoints, so
    a resumed run continues the same file. Runs at validation end, before ModelCheckpoint saves."""

    def __init__(self, run_dir: Path, n_train: int, run_info: dict) -> None:
        self.run_dir = Path(run_dir)
        self.n_train = int(n_train)
        self.run_info = dict(run_info)
        self.rows: list[dict] = []
        self._t0 = 0.0
        self._lr = float("nan")
        self._train_seconds = float("nan")

    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit_t0 = time.perf_counter()
        self._wall_base = float(self.run_info.get("wall_time_s") or 0.0)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        self._t0 = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._train_seconds = time.perf_counter() - self._t0

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        row = {"epoch": int(trainer.current_epoch), "lr": self._lr,
               "train_loss": pl_module.epoch_train_loss(),
               "val_loss": float(m["val_loss"]), "val_acc": float(m["val_acc"]),
               "train_seconds": round(self._train_seconds, 3),
               "train_samples_per_second": round(self.n_train / max(self._train_seconds, 1e-9), 1)}
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.write(status="running")
            for lg in trainer.loggers:
                lg.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

    def write(self, **extra: Any) -> None:
        if hasattr(self, "_fit_t0"):
            self.run_info["wall_time_s"] = round(self._wall_base + time.perf_counter() - self._fit_t0, 2)
        write_metrics_csv(self.run_dir / HISTORY, self.rows)
        self.run_info.update(summarize(self.rows), **extra)
        atomic_write_json(self.run_dir / RUN_INFO, self.run_info)


def _checkpoint_base():
    from lightning.pytorch.callbacks import Checkpoint

    return Checkpoint


def last_checkpoint_due(train: Any, epochs: int, seconds: float, final: bool) -> bool:
    """Whether last.ckpt is written after an epoch that ends ``epochs`` epochs and ``seconds``
    seconds after the previous last.ckpt (or the start): always after the run's ``final`` epoch,
    else when both ``train.last_checkpoint_epochs`` epochs and ``train.last_checkpoint_minutes``
    minutes have passed. Both loops (Lightning and packed) follow this rule."""
    return final or (epochs >= train.last_checkpoint_epochs and seconds >= 60.0 * train.last_checkpoint_minutes)


class LastCheckpoint(_checkpoint_base()):
    """``last.ckpt`` at the end of a training epoch (after its validation) when
    :func:`last_checkpoint_due` says so (``train``: the run's ``train`` config; None = every epoch),
    written to a temporary name and renamed, so a kill never leaves a half-written file. A
    :class:`Checkpoint`, so Lightning calls it after the other callbacks whose state it stores
    (History, EarlyStopping, the best checkpoint). Lightning resumes such end-of-epoch checkpoints
    at the next epoch."""

    def __init__(self, path: Path, train: Any = None) -> None:
        self.path = Path(path)
        self.train = train
        self._written_epoch: int | None = None
        self._written_at = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self._written_epoch, self._written_at = trainer.current_epoch - 1, time.perf_counter()

    def _due(self, trainer) -> bool:
        if self.train is None:
            return True
        epoch = trainer.current_epoch
        since = epoch - (self._written_epoch if self._written_epoch is not None else -1)
        final = bool(trainer.should_stop) or epoch + 1 >= (trainer.max_epochs or 0)
        due = last_checkpoint_due(self.train, since, time.perf_counter() - self._written_at, final)
        return bool(trainer.strategy.broadcast(due, src=0))     # every rank decides as rank 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._due(trainer):
            return
        self._written_epoch, self._written_at = trainer.current_epoch, time.perf_counter()
        # collective; only rank 0 writes (the other ranks' path is not used)
        if trainer.is_global_zero:
            with atomic_path(self.path) as tmp:
                trainer.save_checkpoint(tmp)
        else:
            trainer.save_checkpoint(self.path)
        trainer.strategy.barrier("last_checkpoint")


def selection_callbacks(patience: int, run_dir: Path, train: Any = None) -> list:
    """Early stopping and checkpoints on ``val_loss`` with Keras's semantics: an epoch improves
    only if strictly lower than the best so far; training stops after ``patience`` epochs without
    improvement; ``best.ckpt`` = the best epoch, ``last.ckpt`` = as ``train``'s cadence says
    (:class:`LastCheckpoint`; None: every epoch), in RUN/checkpoints."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    best = checkpoint_path(run_dir, "best")
    return [EarlyStopping(monitor="val_loss", mode="min", patience=patience, min_delta=0.0),
            ModelCheckpoint(dirpath=best.parent, filename=best.stem, monitor="val_loss", mode="min",
                            save_top_k=1, save_last=False, enable_version_counter=False,
                            save_on_train_epoch_end=False),
            LastCheckpoint(checkpoint_path(run_dir, "last"), train)]
