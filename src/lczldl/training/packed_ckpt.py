"""Owns a packed member's checkpoints: Lightning checkpoints identical in form to a solo run's
(``load_model`` and a solo ``lczldl train --resume`` read them), and the pack's all-or-nothing
commit of an epoch's checkpoints across its members' run folders.

A member's checkpoint is built with the solo run's own objects: its :class:`LCZModule` (state-dict
keys ``model.*``, the hyper-parameters with ``model_kwargs``), the module's Nadam and LambdaLR
(``configure_optimizers``), the History / EarlyStopping / ModelCheckpoint callbacks of
``training.run`` (their ``state_key`` and ``state_dict``), and Lightning's fit-loop progress of an
end-of-epoch checkpoint (:func:`fit_loop_state`).

Commit: every checkpoint of an epoch is first written complete under a pending name, then one
journal file (RUNS/.pack-commit-ID.json) lists the renames, then the renames run and the journal
goes. :func:`recover_commits` finishes a journal left by a killed pack, and drops pending files no
journal names, so every member resumes from the same epoch whatever instant the kill came.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lczldl.fileio import atomic_write_bytes, atomic_write_json
from lczldl.layout import BEST_CKPT, CHECKPOINT_DIR, LAST_CKPT
from lczldl.models.io import load_checkpoint_dict

PENDING_SUFFIX = ".pending"
JOURNAL_GLOB = ".pack-commit-*.json"


def _progress(n: int, processed: bool = True) -> dict[str, int]:
    d = {"ready": n, "started": n, "processed": n, "completed": n}
    if not processed:
        d.pop("processed")
    return d


def fit_loop_state(epoch: int, n_batches: int, n_val_batches: int) -> dict[str, Any]:
    """Lightning's ``loops`` entry of a checkpoint saved at the end of (0-based) ``epoch`` after
    ``n_batches`` training and ``n_val_batches`` validation batches per epoch (as a solo run's
    ``last.ckpt``): a resume continues at ``epoch + 1``."""
    total = n_batches * (epoch + 1)
    steps = {"current": {"ready": n_batches, "completed": n_batches},
             "total": {"ready": total, "completed": total}}
    zero = {"current": {"ready": n_batches, "started": n_batches, "completed": n_batches},
            "total": {"ready": total, "started": total, "completed": total}}
    idle = {"current": _progress(0), "total": _progress(0)}
    nothing = {"current": {"ready": 0, "completed": 0}, "total": {"ready": 0, "completed": 0}}
    fit = {
        "state_dict": {},
        "epoch_loop.state_dict": {"_batches_that_stepped": total},
        "epoch_loop.batch_progress": {"current": _progress(n_batches), "total": _progress(total),
                                      "is_last_batch": True},
        "epoch_loop.scheduler_progress": {"current": {"ready": 1, "completed": 1},
                                          "total": {"ready": epoch + 1, "completed": epoch + 1}},
        "epoch_loop.automatic_optimization.state_dict": {},
        "epoch_loop.automatic_optimization.optim_progress": {"optimizer": {"step": steps, "zero_grad": zero}},
        "epoch_loop.manual_optimization.state_dict": {},
        "epoch_loop.manual_optimization.optim_step_progress": nothing,
        "epoch_loop.val_loop.state_dict": {},
        "epoch_loop.val_loop.batch_progress": {"current": _progress(n_val_batches),
                                               "total": _progress(n_val_batches), "is_last_batch": True},
        "epoch_progress": {"current": dict(_progress(epoch + 1), completed=epoch),
                           "total": dict(_progress(epoch + 1), completed=epoch)},
    }
    other = {"state_dict": {}, "batch_progress": dict(idle, is_last_batch=False)}
    return {"fit_loop": fit, "validate_loop": dict(other), "test_loop": dict(other),
            "predict_loop": {"state_dict": {}, "batch_progress": idle}}


class MemberCheckpointer:
    """Builds one member's Lightning checkpoints from its packed state.

    Args:
        module: the member's LCZModule (built like the solo run's; its network receives the state).
        callbacks: ``training.run.History`` and the ``selection_callbacks`` of the member's run
            folder (EarlyStopping, ModelCheckpoint, ...): their state keys and formats are used.
    """

    def __init__(self, module: Any, callbacks: Sequence[Any], n_batches: int, n_val_batches: int) -> None:
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        self.module = module
        self.callbacks = list(callbacks)
        self.early = next(c for c in self.callbacks if isinstance(c, EarlyStopping))
        self.best = next(c for c in self.callbacks if isinstance(c, ModelCheckpoint))
        self.n_batches, self.n_val_batches = int(n_batches), int(n_val_batches)
        conf = module.configure_optimizers()
        self.opt, self.sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]

    def best_path(self) -> str:
        return os.path.join(self.best.dirpath, BEST_CKPT)

    def set_selection(self, epoch: int, wait: int, best_val: float, best_exists: bool, val_loss: float,
                      stopped: bool) -> None:
        """Record early-stopping / best-checkpoint state after ``epoch`` (Lightning's fields)."""
        best = torch.tensor(best_val, dtype=torch.float32)
        self.early.wait_count, self.early.best_score = int(wait), best
        if stopped:
            self.early.stopped_epoch = int(epoch)
        self.best.current_score = torch.tensor(val_loss, dtype=torch.float32)
        if best_exists:
            path = self.best_path()
            self.best.best_model_path = self.best.kth_best_model_path = path
            self.best.best_model_score = self.best.kth_value = best
            self.best.best_k_models = {path: best}

    def checkpoint(self, epoch: int, state: dict[str, torch.Tensor], opt_state: dict) -> dict[str, Any]:
        """The member's checkpoint at the end of ``epoch``: network ``state`` (Sen2LCZ keys) and its
        Nadam ``state`` (parameter index -> tensors), scheduler stepped ``epoch + 1`` times."""
        import lightning

        self.module.model.load_state_dict(state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "lr_scheduler.step() before optimizer.step()"
            while self.sched.last_epoch < epoch + 1:
                self.sched.step()
        groups = self.opt.state_dict()["param_groups"]
        self.opt.load_state_dict({"state": opt_state, "param_groups": groups})
        return {
            "epoch": int(epoch), "global_step": self.n_batches * (epoch + 1),
            "pytorch-lightning_version": lightning.__version__,
            "state_dict": self.module.state_dict(),
            "loops": fit_loop_state(epoch, self.n_batches, self.n_val_batches),
            "callbacks": {c.state_key: c.state_dict() for c in self.callbacks if c.state_dict()},
            "optimizer_states": [self.opt.state_dict()],
            "lr_schedulers": [self.sched.state_dict()],
            "hparams_name": None,
            "hyper_parameters": dict(self.module.hparams),
        }


def read_checkpoint(path: Path, trust: bool = False) -> dict[str, Any]:
    """A checkpoint written by a pack or a solo run, loaded without running code from it (weights
    only: it holds tensors and plain values); a file that needs full unpickling is a ModelError
    unless ``trust`` (:func:`lczldl.models.io.load_checkpoint_dict`)."""
    return load_checkpoint_dict(path, trust)


def to_bytes(ckpt: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def pending(path: Path) -> Path:
    """Where ``path``'s next version waits for the commit (same folder)."""
    return path.with_name(f".{path.name}{PENDING_SUFFIX}")


def commit(out: Path, files: dict[Path, bytes], pack_id: str) -> None:
    """Replace every ``files`` path with its bytes, all or nothing across a kill (see module doc)."""
    renames = []
    for path, data in files.items():
        atomic_write_bytes(pending(path), data)
        renames.append([str(pending(path)), str(path)])
    journal = Path(out) / f".pack-commit-{pack_id}.json"
    atomic_write_json(journal, {"renames": renames})
    _apply(journal)


def _apply(journal: Path) -> None:
    for src, dst in json.loads(journal.read_text())["renames"]:
        if os.path.exists(src):
            os.replace(src, dst)
    journal.unlink()


def recover_commits(out: Path, run_dirs: Sequence[Path]) -> None:
    """Finish the journals under ``out`` that name one of ``run_dirs`` (a pack killed while
    committing), then delete those folders' pending checkpoints no journal named."""
    dirs = {str(Path(d).resolve()) for d in run_dirs}
    for journal in sorted(Path(out).glob(JOURNAL_GLOB)):
        try:
            renames = json.loads(journal.read_text())["renames"]
        except (OSError, ValueError, KeyError):
            continue
        if any(str(Path(dst).resolve().parent.parent) in dirs for _, dst in renames):
            _apply(journal)
    for d in run_dirs:
        for name in (LAST_CKPT, BEST_CKPT):
            pending(Path(d) / CHECKPOINT_DIR / name).unlink(missing_ok=True)


def pack_id(members: Sequence[tuple[str, int]]) -> str:
    """Short stable id of a pack's members (journal names)."""
    key = ",".join(f"{r}/{s}" for r, s in sorted(members))
    return hashlib.sha256(key.encode()).hexdigest()[:12]
