"""Owns ``lczldl train``: one regime x seed into RUNS/REGIME/seedN/ (layout in docs/architecture.md).

Files: ``config.yaml`` (resolved config) and ``run.json`` as a run starts
(:mod:`lczldl.training.members`, shared with packed members; run.json's fields are listed in
docs/architecture.md), ``metrics.csv`` (one row per epoch) and run.json's per-epoch summary and
ending (:class:`~lczldl.training.callbacks.History`), ``checkpoints/best.ckpt`` (lowest
validation loss) and ``checkpoints/last.ckpt`` (``train.last_checkpoint_epochs`` / ``_minutes``, callbacks.LastCheckpoint).

Resumable: ``resume=True`` continues from ``last.ckpt`` (what an existing run folder means is
decided in :mod:`lczldl.training.rundir`). Batches are a function of (seed, epoch)
(``data.datamodule.EpochBatchSampler``) and dropout masks are reseeded from (seed, epoch) at every
epoch start, so a run killed and resumed ends with the same history and best checkpoint as an
uninterrupted one (CPU). A finished run is left alone (a no-op with a message).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lczldl.config import LczldlConfig
from lczldl.data.budget_store import open_budget_store
from lczldl.data.datamodule import LCZDataModule
from lczldl.data.store import is_prepared_store, require_targets
from lczldl.errors import ConfigError, RunError
from lczldl.fileio import atomic_write_json, atomic_write_text
from lczldl.layout import (
    FAILED,
    FINISHED,
    HISTORY,
    MLFLOW_DIR,
    RUN_CONFIG,
    RUN_INFO,
    TENSORBOARD_DIR,
    checkpoint_path,
    run_dir,
)
from lczldl.training import packed
from lczldl.training.callbacks import History, read_metrics_csv, selection_callbacks
from lczldl.training.fastpath import PACKED, choose_engine, cuda_devices, lightning_precision, tf32_settings
from lczldl.training.members import new_module, new_run_info, run_config_text, run_targets, store_config
from lczldl.training.packed_ckpt import read_checkpoint
from lczldl.training.rundir import FRESH, RESUME, SKIP, clear_attempt, plan_run_dir


def _logger(kind: str, run: Path):
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

        return TensorBoardLogger(run, name=TENSORBOARD_DIR, version="")
    try:
        import mlflow  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("train.logger=mlflow: the mlflow package is not installed; "
                          "`pip install mlflow` or use train.logger=csv") from None
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name="lczldl", run_name=f"{run.parent.name}/{run.name}",
                        tracking_uri=(run / MLFLOW_DIR).resolve().as_uri())


def train_run(data: Path, seed: int, out: Path, cfg: LczldlConfig, *, resume: bool = False,
              progress: bool = True, trust_checkpoint: bool = False) -> Path:
    """Train one run of ``cfg`` (its ``train.regime``) and ``seed`` into ``out/REGIME/seedN`` and
    return that folder.

    ``cfg`` is the resolved config (:func:`lczldl.config.load_config` at the entry point: the CLI
    or a study unit). A finished run is left as it is; a run with ``last.ckpt`` needs
    ``resume=True``; anything else in the folder is cleared first. Everything is checked before the
    run folder is touched. ``last.ckpt`` is resumed without running code from it (weights-only
    loading); one that needs full unpickling is a ModelError unless ``trust_checkpoint``. Raises
    ConfigError (bad config), DataError (bad store), RunError (unusable run folder), ModelError.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r}: must be an integer >= 0", params=("seed",))
    store = open_budget_store(Path(data), cfg.data.vote_budget) if is_prepared_store(Path(data)) else None
    if store is not None:           # DataError: a regime needing votes on a store without; K classes
        cfg = store_config(cfg, store)
    run = run_dir(out, cfg.train.regime, seed)
    action = plan_run_dir(run, resume, cfg)
    if action == SKIP:
        print(f"{run}: already finished, nothing to do (delete the folder to train again)", file=sys.stderr)
        return run

    if store is None:
        store = open_budget_store(Path(data), cfg.data.vote_budget)  # DataError for a folder that is not a store
    require_targets(store, run_targets(cfg)[:2])  # DataError: an agg_* target the store lacks, or one a budget cannot build
    logger = _logger(cfg.train.logger, run)  # ConfigError before anything is written
    engine = choose_engine(cfg, *cuda_devices())  # ConfigError too (train.engine=packed it cannot take)
    if action == RESUME:
        read_checkpoint(checkpoint_path(run, "last"), trust=trust_checkpoint)  # ModelError before any write
        print(f"{run}: resuming from {checkpoint_path(run, 'last')}", file=sys.stderr, flush=True)
    if engine == PACKED:
        _fit_packed(cfg, data, seed, out, run, resume, progress)
        return run
    if action == FRESH:
        clear_attempt(run)
    run.mkdir(parents=True, exist_ok=True)
    _fit(cfg, store, seed, run, action, logger, progress, trust_checkpoint)
    return run


def _fit_packed(cfg: LczldlConfig, data: Path, seed: int, out: Path, run: Path, resume: bool,
                progress: bool) -> None:
    """The run as a pack of one (:func:`lczldl.training.packed.train_pack`, the CUDA fast path;
    same run folder); RunError when it failed (the reason is in run.json too)."""
    def say(epoch: int, results: list) -> None:
        row = read_metrics_csv(run / HISTORY)[-1]
        print(f"{run}: epoch {epoch} train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
              f"val_acc {row['val_acc']:.4f}", file=sys.stderr, flush=True)

    print(f"{run}: training on the packed engine (train.engine={cfg.train.engine})", file=sys.stderr, flush=True)
    (result,) = packed.train_pack(Path(data), [(cfg.train.regime, seed)], Path(out), cfg, resume=resume,
                                  on_epoch=say if progress else None)
    if result.status == FAILED:
        raise RunError(f"{run}: training failed: {result.error}")
    if result.status != FINISHED:
        raise RunError(f"{run}: run status is {result.status!r} after training; continue with resume=True",
                       params=("resume",))


def _fit(cfg: LczldlConfig, store: Any, seed: int, run: Path, action: str, logger: Any,
         progress: bool, trust_checkpoint: bool = False) -> None:
    """Build data, model and trainer, fit, and record how the run ended in run.json."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    L.seed_everything(seed, workers=True, verbose=False)
    train_t, val_t, _ = run_targets(cfg)
    dm = LCZDataModule(store.path, target=train_t, eval_target=val_t, batch_size=t.batch_size,
                       bands=cfg.model.bands, num_workers=cfg.data.num_workers, seed=seed,
                       label_smoothing=t.label_smoothing, pin_memory=cfg.data.pin_memory,
                       budget=cfg.data.vote_budget)
    module = new_module(cfg, seed)
    run_info = new_run_info(cfg, store, seed, run, action == RESUME)
    history = History(run, store.split("train").n, run_info)
    trainer = _trainer(cfg, run, [history, *selection_callbacks(t.patience, run, t)], logger, progress)
    if trainer.is_global_zero:
        atomic_write_text(run / RUN_CONFIG, run_config_text(cfg))
        if action != RESUME:
            atomic_write_json(run / RUN_INFO, run_info)
    try:
        with tf32_settings(t.precision):
            trainer.fit(module, datamodule=dm, ckpt_path=checkpoint_path(run, "last") if action == RESUME else None,
                        weights_only=not trust_checkpoint)  # Lightning's resume unpickles no code either
    except BaseException as exc:
        if trainer.is_global_zero:
            history.write(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise
    if trainer.is_global_zero:
        if getattr(trainer, "interrupted", False):
            history.write(status="failed", error="interrupted")
            raise RunError(f"{run}: training was interrupted; continue with resume=True", params=("resume",))
        history.run_info.pop("error", None)
        history.write(status="finished", stopped_early=bool(trainer.should_stop and
                                                            trainer.current_epoch < t.max_epochs),
                      best_checkpoint=str(checkpoint_path(run, "best").resolve()))


def _trainer(cfg: LczldlConfig, run: Path, callbacks: list, logger: Any, progress: bool):
    """The Lightning Trainer of a run (deterministic on CPU; a progress bar on a terminal only)."""
    t = cfg.train
    gpu = t.accelerator not in ("cpu",) and torch.cuda.is_available()
    deterministic: bool | str = t.deterministic
    if t.deterministic and gpu:
        deterministic = "warn"  # some CUDA kernels (max-pool backward) have no deterministic variant
    show = progress and sys.stderr.isatty()
    if show:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks = [*callbacks, RichProgressBar(leave=True)]
    strategy: Any = t.strategy
    if t.strategy == "ddp" and (t.accelerator == "cpu" or not gpu):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    return L.Trainer(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
                     strategy=strategy, precision=lightning_precision(t.precision), deterministic=deterministic,
                     callbacks=callbacks, logger=logger, enable_progress_bar=show,
                     enable_model_summary=False, default_root_dir=run, num_sanity_val_steps=0,
                     use_distributed_sampler=False, log_every_n_steps=1 << 30, benchmark=False)
