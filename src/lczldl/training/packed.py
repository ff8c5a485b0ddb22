"""Owns packed training: K runs of one study (any regimes and seeds, one config and store) trained
together in one process as one packed network, each into its usual RUNS/REGIME/seedN folder.

Per member, exactly as its solo run (``training.run.train_run``): initial weights (the solo
LCZModule built after seeding with the member's seed), batches (``EpochBatchSampler`` of (seed,
epoch)), target and loss (its regime's), dropout masks (its own generator, reseeded per epoch with
``schedule.epoch_seed``), BatchNorm statistics, Nadam state, lr schedule, validation loss, early
stopping (a stopped member leaves the pack: no further change to it), ``config.yaml``,
``run.json``, ``metrics.csv`` and Lightning checkpoints ``best.ckpt`` / ``last.ckpt``.
``last.ckpt`` is written after an epoch when ``train.last_checkpoint_epochs`` epochs and
``train.last_checkpoint_minutes`` minutes passed since the member's previous one, and after its
final epoch; an improved ``best.ckpt`` waits in memory for that commit, so the files on disk always
belong together (best.ckpt is the best up to last.ckpt's epoch) and a resume repeats at most the
epochs since.

Shared: the store's splits (on the device), the epoch loop and its timing (``train_seconds`` of a
member is the pack's epoch; ``train_samples_per_second`` is per member, the pack's aggregate is K
times it), the Nadam hyper-parameters (one config).

Members whose next epoch differs (resumed from older checkpoints) train in cohorts: the cohort
furthest behind trains alone until it catches up. A member whose training or validation loss is
not finite is marked failed (reason in its run.json) and leaves the pack; the others go on.
A killed pack resumes (``resume=True``) every member from its last checkpoint, which a pack
commits for all members at once (``packed_ckpt.commit``): on CPU the result equals the
uninterrupted pack's exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lczldl.config import LczldlConfig
from lczldl.data.budget_store import open_budget_store
from lczldl.data.datamodule import EpochBatchSampler
from lczldl.data.store import require_targets
from lczldl.errors import ConfigError
from lczldl.fileio import atomic_write_json, atomic_write_text
from lczldl.layout import (
    FAILED,
    FINISHED,
    RUN_CONFIG,
    RUN_INFO,
    RUNNING,
    checkpoint_path,
    run_dir,
)
from lczldl.training.callbacks import History, last_checkpoint_due, selection_callbacks
from lczldl.training.fastpath import (
    GPU_ACCELERATORS,
    PACK_PRECISIONS,
    PACK_REFUSED_PRECISIONS,
    backend_settings,
    pack_bf16,
)
from lczldl.training.members import (
    new_module,
    new_run_info,
    run_config_text,
    run_targets,
    store_config,
    with_regime,
)
from lczldl.training.packed_ckpt import (
    MemberCheckpointer,
    commit,
    pack_id,
    read_checkpoint,
    recover_commits,
    to_bytes,
)
from lczldl.training.packed_engine import PackEngine, load_split
from lczldl.training.packed_model import PackedSen2LCZ
from lczldl.training.rundir import FRESH, RESUME, SKIP, clear_attempt, plan_run_dir
from lczldl.training.schedule import epoch_seed, lr_factor

#: train.precision -> what run.json's ``pack.precision`` records
RECORDED_PRECISION = {"32-true": "fp32", "32-tf32": "tf32", "bf16-mixed": "bf16"}


@dataclass
class PackResult:
    """Outcome of one member: status finished | failed | running (pack interrupted); ``epochs``
    completed; ``error`` for a failed member; ``skipped`` when it was already finished."""

    regime: str
    seed: int
    run_dir: Path
    status: str
    epochs: int = 0
    error: str | None = None
    skipped: bool = False


@dataclass
class _Member:
    regime: str
    seed: int
    cfg: LczldlConfig
    run_dir: Path
    module: Any                      # the member's LCZModule (solo init, loss, hparams, Nadam)
    history: Any                     # training.callbacks.History (rows, run.json, metrics.csv)
    ckpt: MemberCheckpointer
    train_target: str
    val_target: str
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    opt_state: dict = field(default_factory=dict)
    next_epoch: int = 0
    best: float = math.inf
    wait: int = 0
    status: str = RUNNING
    error: str | None = None
    written_epoch: int = -1          # epoch of the last.ckpt on disk (-1: none yet)
    written_at: float = field(default_factory=time.perf_counter)   # when it was written (or setup)
    pending_best: bytes | None = None                             # improved best.ckpt not yet on disk

    def result(self) -> PackResult:
        return PackResult(self.regime, self.seed, self.run_dir, self.status, self.next_epoch, self.error)


def _member(regime: str, seed: int, cfg: LczldlConfig, out: Path, store: Any, action: str | None,
            n_batches: int, n_val_batches: int, extra_info: dict) -> _Member | PackResult:
    """Set up one member's run folder and state: ``action`` FRESH, RESUME (from its last.ckpt) or
    SKIP (finished), as :func:`lczldl.training.rundir.plan_run_dir` decided."""
    folder = run_dir(out, regime, seed)
    if action == SKIP:
        return PackResult(regime, seed, folder, FINISHED, skipped=True)
    t = cfg.train
    train_t, val_t, _ = run_targets(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)                        # what seed_everything does before the solo builds
        module = new_module(cfg, seed)
    info = dict(new_run_info(cfg, store, seed, folder, action == RESUME), **extra_info)
    n_train = store.split("train").n
    history = History(folder, n_train, info)
    callbacks = [history, *selection_callbacks(t.patience, folder)]
    m = _Member(regime, seed, cfg, folder, module, history, MemberCheckpointer(module, callbacks, n_batches,
                                                                              n_val_batches), train_t, val_t)
    m.state = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    if action == RESUME:
        ck = read_checkpoint(checkpoint_path(folder, "last"))
        m.state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
        m.opt_state = ck["optimizer_states"][0]["state"]
        for cb in callbacks:
            if cb.state_key in ck.get("callbacks", {}):
                cb.load_state_dict(ck["callbacks"][cb.state_key])
        m.next_epoch, m.wait = int(ck["epoch"]) + 1, int(m.ckpt.early.wait_count)
        m.written_epoch = int(ck["epoch"])
        m.best = float(m.ckpt.early.best_score)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / RUN_CONFIG, run_config_text(cfg))
    if action != RESUME:
        atomic_write_json(folder / RUN_INFO, info)
    history.on_fit_start(None, None)                   # wall-time clock (continues a resumed run's)
    return m




def epoch_batches(seeds: Sequence[int], n: int, batch_size: int, epoch: int) -> tuple[torch.Tensor,
                                                                                        torch.Tensor | None]:
    """Each member's batches of ``epoch`` (the solo run's: EpochBatchSampler of (seed, epoch)):
    full batches (steps, K, batch_size) int64 and the last smaller batch (K, n % batch_size) or None."""
    per = []
    for s in seeds:
        sampler = EpochBatchSampler(n, batch_size, shuffle=True, seed=s)
        sampler.set_epoch(epoch)
        per.append(list(sampler))
    steps = n // batch_size
    full = (torch.from_numpy(np.stack([np.stack(b[:steps]) for b in per], axis=1)) if steps
            else torch.empty((0, len(seeds), batch_size), dtype=torch.int64))
    last = torch.from_numpy(np.stack([b[-1] for b in per])) if n % batch_size else None
    return full, last


class _Pack:
    """The packed network, its engine and one dropout generator per member, for one cohort."""

    def __init__(self, members: Sequence[_Member], train: Any, val: Any, device: torch.device,
                 memory_format: str, bf16: bool, graphs: bool, val_batch_size: int) -> None:
        t = members[0].cfg.train
        self.members = list(members)
        self.net = PackedSen2LCZ(members[0].module.model.model_kwargs, len(members), memory_format).to(device)
        self.net.load_members([m.state for m in members])
        self.generators = [torch.Generator(device=device) for _ in members]
        self.net.set_generators(self.generators)
        self.engine = PackEngine(self.net, [m.module.loss for m in members], [m.train_target for m in members],
                                 [m.val_target for m in members], train, val, lr=t.lr, bf16=bf16,
                                 graphs=graphs, val_batch_size=val_batch_size,
                                 optimizer={"eps": t.nadam_eps, "momentum_decay": t.nadam_momentum_decay})
        self.engine.load_optimizer_state(self.net.pack_optimizer_state([m.opt_state for m in members]))

    def epoch(self, epoch: int, n_train: int) -> dict[str, Any]:
        """Train and validate one epoch; each member's results and new states."""
        t = self.members[0].cfg.train
        lr = t.lr * lr_factor(epoch, t.lr_decay, t.lr_step_epochs)
        for m, g in zip(self.members, self.generators, strict=True):
            g.manual_seed(epoch_seed(m.seed, epoch))
        full, last = epoch_batches([m.seed for m in self.members], n_train, t.batch_size, epoch)
        t0 = time.perf_counter()
        self.engine.train_epoch(full, last, lr)
        train_loss = self.engine.epoch_losses(n_train)            # the epoch's one host sync
        seconds = time.perf_counter() - t0
        val_loss, val_acc = self.engine.validate()
        return {"lr": lr, "seconds": seconds, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
                "states": self.net.member_states(),
                "opt_states": self.net.member_optimizer_states(self.engine.opt.state_dict()["state"])}


def _record(m: _Member, epoch: int, r: dict[str, Any], i: int, n_train: int) -> dict[Path, bytes]:
    """Update member ``m`` (index ``i`` of its cohort) after ``epoch``; the checkpoint files to
    commit for it (none when it failed or its last.ckpt is not due, see the module doc). Early
    stopping as Keras: an improvement is a strictly lower validation loss; stop after
    ``patience`` epochs without one."""
    tl, vl, va = float(r["train_loss"][i]), float(r["val_loss"][i]), float(r["val_acc"][i])
    row = {"epoch": epoch, "lr": r["lr"], "train_loss": tl, "val_loss": vl, "val_acc": va,
           "train_seconds": round(r["seconds"], 3),
           "train_samples_per_second": round(n_train / max(r["seconds"], 1e-9), 1)}
    m.history.rows = [x for x in m.history.rows if x["epoch"] < epoch] + [row]
    for what, value in (("training", tl), ("validation", vl)):
        if not math.isfinite(value):
            m.status, m.error = FAILED, f"non-finite {what} loss ({value}) in epoch {epoch}"
            return {}
    m.state, m.opt_state = r["states"][i], r["opt_states"][i]
    improved = vl < m.best
    m.best, m.wait = (vl, 0) if improved else (m.best, m.wait + 1)
    m.next_epoch = epoch + 1
    stopped = m.wait >= m.cfg.train.patience
    if stopped or m.next_epoch >= m.cfg.train.max_epochs:
        m.status = FINISHED
    has_best = improved or m.pending_best is not None or checkpoint_path(m.run_dir, "best").is_file()
    m.ckpt.set_selection(epoch, m.wait, m.best, has_best, vl, stopped=stopped)
    now = time.perf_counter()
    due = last_checkpoint_due(m.cfg.train, epoch - m.written_epoch, now - m.written_at, final=m.status != RUNNING)
    if not (due or improved):
        return {}
    data = to_bytes(m.ckpt.checkpoint(epoch, m.state, m.opt_state))
    if improved:
        m.pending_best = data
    if not due:
        return {}
    files = {checkpoint_path(m.run_dir, "last"): data}
    if m.pending_best is not None:
        files[checkpoint_path(m.run_dir, "best")] = m.pending_best
    m.pending_best, m.written_epoch, m.written_at = None, epoch, now
    return files


def _write_status(m: _Member) -> None:
    """run.json and metrics.csv of a member after its epoch (History's writers)."""
    if m.status == FAILED:
        m.history.write(status=FAILED, error=m.error)
    elif m.status == FINISHED:
        m.history.run_info.pop("error", None)
        last = m.history.rows[-1]["epoch"] if m.history.rows else -1
        m.history.write(status=FINISHED, stopped_early=bool(m.wait >= m.cfg.train.patience and
                                                           last + 1 < m.cfg.train.max_epochs),
                        best_checkpoint=str(checkpoint_path(m.run_dir, "best").resolve()))
    else:
        m.history.write(status=RUNNING)


def train_pack(data: Path, members: Sequence[tuple[str, int]], out: Path, cfg: LczldlConfig, *,
               resume: bool = False, device: str | None = None, graphs: bool | None = None,
               memory_format: str | None = None, val_batch_size: int | None = None,
               on_epoch: Callable[[int, list[PackResult]], None] | None = None) -> list[PackResult]:
    """Train the runs ``members`` ((regime, seed), ...) together into ``out/REGIME/seedN``.

    ``cfg``: the resolved config (:func:`lczldl.config.load_config` at the entry point), one for
    all members but the regime (each member runs ``cfg`` with its own ``train.regime``); the
    forward runs in bf16 autocast when ``train.precision`` is bf16-mixed (``fastpath.pack_bf16``).
    ``device``: None = CUDA when available (and ``train.accelerator`` allows), else CPU.
    ``graphs`` (default on): capture the step in a CUDA graph where
    :func:`lczldl.training.packed_engine.graph_api` offers graphs (CUDA). ``memory_format``: of
    the packed convolutions (default from ``train.channels_last``). ``on_epoch(epoch, results)``
    is called after every epoch of a cohort (progress). Finished members are skipped; unfinished
    ones with a last.ckpt need ``resume=True`` (RunError otherwise, before anything is trained).
    Returns one :class:`PackResult` per member, in order.
    """
    members = [(str(r), s) for r, s in members]
    for _, s in members:
        if not isinstance(s, int) or s < 0:
            raise ConfigError(f"seeds must be integers >= 0, got {s!r}")
    if len(set(members)) != len(members):
        raise ConfigError(f"a pack cannot hold the same run twice: {members}")
    if cfg.train.precision not in PACK_PRECISIONS:
        raise ConfigError(f"train.precision={cfg.train.precision}: "
                          f"{PACK_REFUSED_PRECISIONS.get(cfg.train.precision, 'not a packed precision')}")
    store = open_budget_store(Path(data), cfg.data.vote_budget)   # train / val from k votes under a budget
    cfgs = [store_config(with_regime(cfg, r), store) for r, _ in members]  # votes refusal, K classes
    require_targets(store, [t for c in cfgs for t in run_targets(c)[:2]])
    bf16 = pack_bf16(cfg)
    t = cfgs[0].train
    dev = torch.device(device) if device else torch.device(
        "cuda" if torch.cuda.is_available() and t.accelerator in GPU_ACCELERATORS else "cpu")
    n_train, n_val = (store.split(s).n for s in ("train", "val"))
    n_batches, n_val_batches = math.ceil(n_train / t.batch_size), math.ceil(n_val / t.batch_size)
    folders = [run_dir(out, r, s) for r, s in members]
    recover_commits(out, folders)
    actions = [plan_run_dir(f, resume, c) for f, c in zip(folders, cfgs, strict=True)]  # every refusal first
    for f, a in zip(folders, actions, strict=True):
        if a == FRESH:
            clear_attempt(f)                      # what a killed attempt left before its first epoch
    extra = {"pack": {"members": [f"{r}/seed{s}" for r, s in members], "device": str(dev),
                      "precision": RECORDED_PRECISION[t.precision]}}
    setup = [_member(r, s, c, out, store, a, n_batches, n_val_batches, extra)
             for (r, s), c, a in zip(members, cfgs, actions, strict=True)]
    live = [m for m in setup if isinstance(m, _Member)]
    for m in live:
        if m.next_epoch >= m.cfg.train.max_epochs or m.wait >= m.cfg.train.patience:
            m.status = FINISHED                       # killed after its last epoch's checkpoint
            _write_status(m)
    if any(m.status == RUNNING for m in live):
        _train(live, store, out, dev, members, n_train, bf16=bf16,
               graphs=True if graphs is None else graphs,
               memory_format=memory_format or ("channels_last" if t.channels_last else "contiguous"),
               val_batch_size=val_batch_size or max(t.batch_size, 4096 // max(len(live), 1)), on_epoch=on_epoch)
    return [m.result() if isinstance(m, _Member) else m for m in setup]


def _train(live: list[_Member], store: Any, out: Path, dev: torch.device, members: list[tuple[str, int]],
           n_train: int, *, bf16: bool, graphs: bool, memory_format: str, val_batch_size: int,
           on_epoch: Callable[[int, list[PackResult]], None] | None) -> None:
    """The epoch loop over cohorts; marks every unfinished member failed if the pack dies."""
    t, model = live[0].cfg.train, live[0].cfg.model
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    pid = pack_id(members)
    with backend_settings(t, dev.type):
        _epochs(live, store, out, dev, pid, n_train, t, model, bf16=bf16, graphs=graphs,
                memory_format=memory_format, val_batch_size=val_batch_size, on_epoch=on_epoch)


def _epochs(live: list[_Member], store: Any, out: Path, dev: torch.device, pid: str, n_train: int, t: Any,
            model: Any, *, bf16: bool, graphs: bool, memory_format: str, val_batch_size: int,
            on_epoch: Callable[[int, list[PackResult]], None] | None) -> None:
    """Epochs of the cohorts until no member runs; commits each epoch's due checkpoints at once."""
    pack = None
    try:
        train = load_split(store, "train", model.bands, [m.train_target for m in live], t.label_smoothing, dev)
        val = load_split(store, "val", model.bands, [m.val_target for m in live], t.label_smoothing, dev)
        while todo := [m for m in live if m.status == RUNNING]:
            epoch = min(m.next_epoch for m in todo)
            cohort = [m for m in todo if m.next_epoch == epoch]
            if pack is None or pack.members != cohort:
                pack = None                            # free the old pack (and its graph) first
                pack = _Pack(cohort, train, val, dev, memory_format, bf16, graphs, val_batch_size)
            r = pack.epoch(epoch, n_train)
            files = {}
            for i, m in enumerate(cohort):
                files.update(_record(m, epoch, r, i, n_train))
            if files:
                commit(out, files, pid)
            for m in cohort:
                _write_status(m)
            if on_epoch is not None:
                on_epoch(epoch, [m.result() for m in live])
    except BaseException as exc:
        for m in live:
            if m.status == RUNNING:
                msg = str(exc).splitlines()[0] if str(exc) else ""
                m.history.write(status=FAILED, error=f"{type(exc).__name__}: {msg}")
        raise
