"""last.ckpt cadence (train.last_checkpoint_epochs / _minutes): the rule, the Lightning callback
and the pack, whose best.ckpt waits for the next last.ckpt so the files on disk belong together."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lczldl.config import load_config
from lczldl.errors import ConfigError
from lczldl.training.callbacks import LastCheckpoint, last_checkpoint_due, read_metrics_csv
from lczldl.training.packed import train_pack

from .conftest import TINY, run_config

TIMING = ("train_seconds", "train_samples_per_second")


def _train(epochs: int = 1, minutes: float = 0.0):
    return load_config(None, [f"train.last_checkpoint_epochs={epochs}",
                              f"train.last_checkpoint_minutes={minutes}"]).train


def test_due_rule():
    assert last_checkpoint_due(_train(), 1, 0.0, final=False)                  # default: every epoch
    assert not last_checkpoint_due(_train(3), 2, 1e9, final=False)
    assert last_checkpoint_due(_train(3), 3, 0.0, final=False)
    assert not last_checkpoint_due(_train(1, 2.0), 5, 119.0, final=False)       # both conditions
    assert last_checkpoint_due(_train(1, 2.0), 1, 120.0, final=False)
    assert last_checkpoint_due(_train(50, 60.0), 1, 0.0, final=True)            # the final epoch always
    for bad in ("train.last_checkpoint_epochs=0", "train.last_checkpoint_minutes=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(None, [bad])


def test_lightning_callback_follows_the_rule(tmp_path):
    saved = []
    trainer = SimpleNamespace(current_epoch=0, should_stop=False, max_epochs=6, is_global_zero=True,
                              save_checkpoint=lambda path: saved.append(trainer.current_epoch),
                              strategy=SimpleNamespace(broadcast=lambda x, src=0: x, barrier=lambda name: None))
    cb = LastCheckpoint(tmp_path / "last.ckpt", _train(2))
    cb.on_train_start(trainer, None)
    for epoch in range(6):
        trainer.current_epoch = epoch
        trainer.should_stop = epoch == 4                      # early stopping after epoch 4
        cb.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            break
    assert saved == [1, 3, 4]
    resumed, saved[:] = LastCheckpoint(tmp_path / "last.ckpt", _train(2)), []
    trainer.current_epoch, trainer.should_stop = 2, False     # resumed from last.ckpt of epoch 1
    resumed.on_train_start(trainer, None)
    for epoch in (2, 3, 4, 5):
        trainer.current_epoch = epoch
        resumed.on_train_epoch_end(trainer, None)
    assert saved == [3, 5]
    assert LastCheckpoint(tmp_path / "x.ckpt").train is None    # no config: every epoch


def test_pack_writes_last_and_pending_best_on_the_cadence(tiny_store, tmp_path):
    on_disk = []

    def seen(epoch, results):
        row = []
        for r in results:
            ck = {w: torch.load(r.run_dir / "checkpoints" / f"{w}.ckpt", weights_only=False, map_location="cpu")
                  for w in ("last", "best") if (r.run_dir / "checkpoints" / f"{w}.ckpt").is_file()}
            row.append({w: int(c["epoch"]) for w, c in ck.items()})
        on_disk.append(row)

    members = [("onehot", 0), ("dist", 1)]
    every = train_pack(tiny_store, members, tmp_path / "every", run_config(TINY, max_epochs=5))
    sparse = train_pack(tiny_store, members, tmp_path / "sparse",
                        run_config(TINY + ["train.last_checkpoint_epochs=2"], max_epochs=5), on_epoch=seen)
    assert [[m.get("last") for m in row] for row in on_disk] == [[None, None], [1, 1], [1, 1], [3, 3], [4, 4]]
    for row in on_disk:
        assert all(m.get("best", -1) <= m.get("last", -1) for m in row)    # best never ahead of last
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    for a, b in zip(every, sparse, strict=True):                              # training itself unchanged
        ra, rb = (read_metrics_csv(r.run_dir / "metrics.csv") for r in (a, b))
        assert strip(ra) == strip(rb)
        for which in ("best", "last"):
            ca, cb = (torch.load(r.run_dir / "checkpoints" / f"{which}.ckpt", weights_only=False, map_location="cpu")
                      for r in (a, b))
            assert ca["epoch"] == cb["epoch"]
            assert all(torch.equal(ca["state_dict"][k], cb["state_dict"][k]) for k in ca["state_dict"])
