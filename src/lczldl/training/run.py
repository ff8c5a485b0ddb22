"""``lczldl train``: one regime x seed into RUNS/REGIME/seedN/ (layout in docs/architecture.md).

Files: ``config.yaml`` (resolved config), ``run.json`` (status running|finished|failed, regime,
seed, data, data_checksum, epochs, best_epoch, best_val_loss, wall_time_s,
train_samples_per_second, versions, config), ``metrics.csv`` (one row per epoch, written by
:class:`History`), ``checkpoints/best.ckpt`` (lowest validation loss) and ``checkpoints/last.ckpt``
(every epoch).

Resumable: ``resume=True`` continues from ``last.ckpt``. Batches are a function of (seed, epoch)
(``data.datamodule.EpochBatchSampler``) and dropout masks are reseeded from (seed, epoch) at every
epoch start, so a run killed and resumed ends with the same history and best checkpoint as an
uninterrupted one (CPU). A finished run is left alone (a no-op with a message).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from lczldl.config import LczldlConfig, dump_config, load_config
from lczldl.errors import ConfigError, RunError
from lczldl.fileio import atomic_write_json, atomic_write_text, file_sha256
from lczldl.provenance import versions

CSV_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "val_acc", "train_seconds",
              "train_samples_per_second")
#: config keys that may change between a run and its resumption (speed only, or the epoch cap)
RUNTIME_KEYS = {("data", "num_workers"), ("data", "pin_memory"), ("train", "num_threads"),
                ("train", "max_epochs"), ("train", "logger")}


def run_dir_for(out: Path, regime: str, seed: int) -> Path:
    """RUNS/REGIME/seedN."""
    return Path(out) / regime / f"seed{seed}"


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
        write_metrics_csv(self.run_dir / "metrics.csv", self.rows)
        self.run_info.update(summarize(self.rows), **extra)
        atomic_write_json(self.run_dir / "run.json", self.run_info)


def _checkpoint_base():
    from lightning.pytorch.callbacks import Checkpoint

    return Checkpoint


class LastCheckpoint(_checkpoint_base()):
    """``last.ckpt`` at the end of every training epoch (after its validation), written to a
    temporary name and renamed, so a kill never leaves a half-written file. A :class:`Checkpoint`,
    so Lightning calls it after the other callbacks whose state it stores (History,
    EarlyStopping, the best checkpoint). Lightning resumes such end-of-epoch checkpoints at the
    next epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        import os

        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp)  # collective; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last_checkpoint")


def selection_callbacks(patience: int, ckpt_dir: Path) -> list:
    """Early stopping and checkpoints on ``val_loss`` with Keras's semantics: an epoch improves
    only if strictly lower than the best so far; training stops after ``patience`` epochs without
    improvement; ``best.ckpt`` = the best epoch, ``last.ckpt`` = every epoch."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    return [EarlyStopping(monitor="val_loss", mode="min", patience=patience, min_delta=0.0),
            ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1,
                            save_last=False, enable_version_counter=False, save_on_train_epoch_end=False),
            LastCheckpoint(Path(ckpt_dir) / "last.ckpt")]


def _comparable(cfg: dict) -> dict:
    return {s: {k: v for k, v in sec.items() if (s, k) not in RUNTIME_KEYS} if isinstance(sec, dict) else sec
            for s, sec in cfg.items() if s != "study"}


def _check_resume_config(run_dir: Path, cfg: LczldlConfig) -> None:
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    old = _comparable(yaml.safe_load(path.read_text()) or {})
    new = _comparable(cfg.model_dump(mode="json"))
    for s in sorted(set(old) | set(new)):
        a, b = old.get(s) or {}, new.get(s) or {}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                raise RunError(f"{run_dir}: cannot resume with a different config ({s}.{k}: "
                               f"{a.get(k)!r} in config.yaml, now {b.get(k)!r}); use the run's config "
                               "or a new --out")


def _logger(kind: str, run_dir: Path):
    """csv: no Lightning logger (metrics.csv is ours); tensorboard / mlflow in the run folder."""
    if kind == "csv":
        return False
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ModuleNotFoundError:
            try:
                import tensorboardX  # noqa: F401
            except ModuleNotFoundError:
                raise ConfigError("train.logger=tensorboard: the tensorboard package is not installed; "
                                  "`pip install tensorboard` or use train.logger=csv") from None
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(run_dir, name="tensorboard", version="")
    try:
        import mlflow  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("train.logger=mlflow: the mlflow package is not installed; "
                          "`pip install mlflow` or use train.logger=csv") from None
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name="lczldl", run_name=f"{run_dir.parent.name}/{run_dir.name}",
                        tracking_uri=(run_dir / "mlruns").resolve().as_uri())


def _prepare_run_dir(run_dir: Path, resume: bool, cfg: LczldlConfig) -> str | None:
    """Decide what to do with an existing run folder: "skip" (finished), "resume" or None (fresh)."""
    info_path, last = run_dir / "run.json", run_dir / "checkpoints" / "last.ckpt"
    status = None
    if info_path.is_file():
        try:
            status = json.loads(info_path.read_text()).get("status")
        except ValueError:
            status = None
    if status == "finished":
        return "skip"
    if last.is_file():
        if not resume:
            raise RunError(f"{run_dir}: an earlier run stopped after saving checkpoints/last.ckpt "
                           f"(status {status!r}); pass --resume to continue it or delete the folder")
        _check_resume_config(run_dir, cfg)
        return "resume"
    # nothing to resume from: start clean (stale files of a run killed before its first epoch)
    for name in ("metrics.csv", "run.json"):
        (run_dir / name).unlink(missing_ok=True)
    return None


def train_run(data: Path, regime: str, seed: int, out: Path, config: Path | None = None,
              overrides: list[str] | None = None, max_epochs: int | None = None, resume: bool = False, *,
              devices: int | str | None = None, accelerator: str | None = None, progress: bool = True,
              num_threads: int | None = None) -> Path:
    """Train one regime x seed into ``out/REGIME/seedN`` and return that folder.

    Config: defaults <- ``config`` YAML <- ``overrides`` ("train.lr=0.001") <- the explicit
    arguments (regime, max_epochs, devices, accelerator, num_threads; None = keep the config's).
    A finished run is left as it is. A run with ``last.ckpt`` needs ``resume=True``.
    Raises ConfigError (bad config), DataError (bad store), RunError (unusable run folder).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {seed!r}")
    cfg = load_config(config, overrides, **{"train.regime": regime, "train.max_epochs": max_epochs,
                                            "train.devices": devices, "train.accelerator": accelerator,
                                            "train.num_threads": num_threads})
    t = cfg.train
    run_dir = run_dir_for(out, t.regime, seed)
    ckpt_dir = run_dir / "checkpoints"
    action = _prepare_run_dir(run_dir, resume, cfg) if run_dir.exists() else None
    if action == "skip":
        print(f"{run_dir}: already finished, nothing to do (delete the folder to train again)", file=sys.stderr)
        return run_dir

    from lczldl.data.store import open_store

    store = open_store(Path(data))  # DataError for a folder that is not a store

    import lightning as L
    import torch

    from lczldl.data.datamodule import LCZDataModule
    from lczldl.training.losses import regime_targets
    from lczldl.training.module import LCZModule

    logger = _logger(t.logger, run_dir)  # ConfigError before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    L.seed_everything(seed, workers=True, verbose=False)
    train_t, val_t, loss = regime_targets(t.regime, t.label_smoothing_compat17)
    dm = LCZDataModule(store.path, target=train_t, eval_target=val_t, batch_size=t.batch_size,
                       bands=cfg.model.bands, num_workers=cfg.data.num_workers, seed=seed,
                       label_smoothing=t.label_smoothing, pin_memory=cfg.data.pin_memory)
    model_kwargs = {"num_classes": cfg.model.num_classes, "in_channels": len(cfg.model.bands),
                    "depth": cfg.model.depth, "width": cfg.model.width, "dropout": cfg.model.dropout,
                    "fusion": cfg.model.fusion,
                    "memory_format": "channels_last" if t.channels_last else "contiguous"}
    module = LCZModule(model_kwargs, loss=loss, lr=t.lr, lr_decay=t.lr_decay, lr_step_epochs=t.lr_step_epochs,
                       nadam_eps=t.nadam_eps, nadam_momentum_decay=t.nadam_momentum_decay, seed=seed)

    previous: dict = {}
    if action == "resume" and (run_dir / "run.json").is_file():
        previous = json.loads((run_dir / "run.json").read_text())
    run_info = {"status": "running", "regime": t.regime, "seed": seed, "data": str(store.path.resolve()),
                "data_checksum": file_sha256(store.path / "manifest.json"),
                "train_target": train_t, "val_target": val_t, "loss": loss,
                "versions": versions(), "config": cfg.model_dump(mode="json"),
                "wall_time_s": float(previous.get("wall_time_s") or 0.0), "resumed": action == "resume"}
    n_train = int(store.manifest["splits"]["train"]["n"])
    history = History(run_dir, n_train, run_info)
    gpu = t.accelerator not in ("cpu",) and torch.cuda.is_available()
    deterministic: bool | str = t.deterministic
    if t.deterministic and gpu:
        deterministic = "warn"  # some CUDA kernels (max-pool backward) have no deterministic variant
    callbacks = [history, *selection_callbacks(t.patience, ckpt_dir)]
    show = progress and sys.stderr.isatty()
    if show:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    strategy: Any = t.strategy
    if t.strategy == "ddp" and (t.accelerator == "cpu" or not gpu):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    trainer = L.Trainer(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
                        strategy=strategy, precision=t.precision, deterministic=deterministic,
                        callbacks=callbacks, logger=logger, enable_progress_bar=show,
                        enable_model_summary=False, default_root_dir=run_dir, num_sanity_val_steps=0,
                        use_distributed_sampler=False, log_every_n_steps=1 << 30, benchmark=False)
    ckpt_path = ckpt_dir / "last.ckpt" if action == "resume" else None
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
        if action != "resume":
            atomic_write_json(run_dir / "run.json", run_info)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except BaseException as exc:
        if trainer.is_global_zero:
            history.write(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise
    if trainer.is_global_zero:
        if getattr(trainer, "interrupted", False):
            history.write(status="failed", error="interrupted")
            raise RunError(f"{run_dir}: training was interrupted; continue with --resume")
        history.run_info.pop("error", None)
        history.write(status="finished", stopped_early=bool(trainer.should_stop and
                                                            trainer.current_epoch < t.max_epochs),
                      best_checkpoint=str((ckpt_dir / "best.ckpt").resolve()))
    return run_dir


# ------------------------------------------------------------------ shared with training.packed
# Added for packed training (issue 11). train_run builds the same two dicts inline above; the
# integrator points train_run at these so each has one owner. prepare_run_dir is _prepare_run_dir.

def model_kwargs_for(cfg: LczldlConfig) -> dict[str, Any]:
    """Sen2LCZ constructor arguments of a resolved config (``train.channels_last`` -> memory format)."""
    return {"num_classes": cfg.model.num_classes, "in_channels": len(cfg.model.bands),
            "depth": cfg.model.depth, "width": cfg.model.width, "dropout": cfg.model.dropout,
            "fusion": cfg.model.fusion,
            "memory_format": "channels_last" if cfg.train.channels_last else "contiguous"}


def new_run_info(cfg: LczldlConfig, store_path: Path, seed: int, previous: dict, resumed: bool) -> dict[str, Any]:
    """run.json of a run starting (or resuming, ``previous`` = its old run.json) under ``cfg``."""
    from lczldl.training.losses import regime_targets

    train_t, val_t, loss = regime_targets(cfg.train.regime, cfg.train.label_smoothing_compat17)
    return {"status": "running", "regime": cfg.train.regime, "seed": seed, "data": str(Path(store_path).resolve()),
            "data_checksum": file_sha256(Path(store_path) / "manifest.json"),
            "train_target": train_t, "val_target": val_t, "loss": loss,
            "versions": versions(), "config": cfg.model_dump(mode="json"),
            "wall_time_s": float(previous.get("wall_time_s") or 0.0), "resumed": resumed}


prepare_run_dir = _prepare_run_dir
