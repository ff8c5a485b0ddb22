"""Owns how one run is built from its resolved config, for both training loops (the Lightning loop
of :mod:`lczldl.training.run` and the packed engine of :mod:`lczldl.training.packed`): its targets
and loss, the network's constructor arguments, its LightningModule, the run.json it starts with and
the text of its config.yaml. A solo run and a packed member of the same config and seed are built
here by the same calls, which is what makes them the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lczldl.config import LczldlConfig, run_sections, validate_config
from lczldl.data.budget_store import budget_counts
from lczldl.data.store import Store, require_votes
from lczldl.fileio import file_sha256
from lczldl.layout import RUNNING, manifest_path, read_run_info
from lczldl.provenance import versions
from lczldl.regimes import regime_targets
from lczldl.training.module import LCZModule


def with_regime(cfg: LczldlConfig, regime: str) -> LczldlConfig:
    """``cfg`` with ``train.regime`` set to ``regime`` (validated: ConfigError for an unknown one);
    the config of one member of a pack."""
    data = cfg.model_dump()
    data["train"]["regime"] = regime
    return validate_config(data)


def store_config(cfg: LczldlConfig, store: Store) -> LczldlConfig:
    """``cfg`` fitted to the store a run trains on, checked before anything is written: a regime
    that needs expert votes on a store without them is a DataError naming the regimes that apply
    (:func:`lczldl.data.store.require_votes`); ``model.num_classes`` becomes the store's K (10 urban
    classes, 17 for So2Sat LCZ42), so the recorded config says what the network has."""
    require_votes(store, [cfg.train.regime])
    if cfg.model.num_classes == store.num_classes:
        return cfg
    data = cfg.model_dump()
    data["model"]["num_classes"] = store.num_classes
    return validate_config(data)


def run_targets(cfg: LczldlConfig) -> tuple[str, str, str]:
    """(train target, validation target, loss) of the config's regime (``label_smoothing_compat17``
    applied)."""
    return regime_targets(cfg.train.regime, cfg.train.label_smoothing_compat17)


def model_kwargs(cfg: LczldlConfig) -> dict[str, Any]:
    """Sen2LCZ-Net constructor arguments of a config (``in_channels`` = number of bands)."""
    m = cfg.model
    return {"num_classes": m.num_classes, "in_channels": len(m.bands), "depth": m.depth, "width": m.width,
            "dropout": m.dropout, "fusion": m.fusion,
            "memory_format": "channels_last" if cfg.train.channels_last else "contiguous"}


def new_module(cfg: LczldlConfig, seed: int) -> LCZModule:
    """The LightningModule of a run of ``cfg`` (its network initialised from the current torch RNG)."""
    t = cfg.train
    return LCZModule(model_kwargs(cfg), loss=run_targets(cfg)[2], lr=t.lr, lr_decay=t.lr_decay,
                     lr_step_epochs=t.lr_step_epochs, nadam_eps=t.nadam_eps,
                     nadam_momentum_decay=t.nadam_momentum_decay, seed=seed)


def new_run_info(cfg: LczldlConfig, store: Store, seed: int, run: Path, resumed: bool) -> dict[str, Any]:
    """run.json of the run in folder ``run`` starting (or resuming: its wall time continues from its
    old run.json) under ``cfg`` on the opened ``store``. Under a vote budget
    (``data.vote_budget.k``) it records ``vote_budget`` {split: the draw and its counts}
    (:func:`lczldl.data.store.budget_counts`). :class:`lczldl.training.callbacks.History` adds the
    per-epoch summary and how the run ended; a pack adds its ``pack`` record."""
    previous = (read_run_info(run) or {}) if resumed else {}
    train_t, val_t, loss = run_targets(cfg)
    info = {"status": RUNNING, "regime": cfg.train.regime, "seed": seed, "data": str(Path(store.path).resolve()),
            "data_checksum": file_sha256(manifest_path(store.path)),
            "train_target": train_t, "val_target": val_t, "loss": loss,
            "versions": versions(), "config": run_sections(cfg),
            "wall_time_s": float(previous.get("wall_time_s") or 0.0), "resumed": resumed}
    budget = budget_counts(store)
    if budget is not None:
        info["vote_budget"] = budget
    return info


def run_config_text(cfg: LczldlConfig) -> str:
    """The text of a run's config.yaml: the resolved run sections (no ``study`` section)."""
    return yaml.safe_dump(run_sections(cfg), sort_keys=False)
