"""Real (tiny) training runs: run folder contents, determinism, regimes' validation targets,
skip / refusal rules."""

import json

import numpy as np
import pytest
import torch
import yaml

from lczldl.config import load_config
from lczldl.errors import RunError
from lczldl.models.io import load_model
from lczldl.training.callbacks import read_metrics_csv
from lczldl.training.run import train_run

from .conftest import TINY, run_config


def _train(store, out, regime="dist", seed=0, epochs=3, extra=()):
    return train_run(store, seed, out, run_config(TINY + list(extra), regime, epochs), progress=False)


@pytest.fixture(scope="module")
def dist_run(tiny_store, tmp_path_factory):
    return _train(tiny_store, tmp_path_factory.mktemp("runs"), "dist", seed=3, epochs=3)


def test_run_folder_contents(dist_run, tiny_store):
    assert dist_run.name == "seed3" and dist_run.parent.name == "dist"
    assert {p.name for p in (dist_run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    rows = read_metrics_csv(dist_run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    info = json.loads((dist_run / "run.json").read_text())
    assert info["status"] == "finished" and info["regime"] == "dist" and info["seed"] == 3
    assert info["epochs"] == 3 and info["data"] == str(tiny_store.resolve())
    best = min(rows, key=lambda r: r["val_loss"])
    assert info["best_epoch"] == best["epoch"] and info["best_val_loss"] == best["val_loss"]
    assert info["train_samples_per_second"] == pytest.approx(
        np.mean([r["train_samples_per_second"] for r in rows[1:]]), abs=0.1)
    import hashlib
    assert info["data_checksum"] == hashlib.sha256((tiny_store / "manifest.json").read_bytes()).hexdigest()
    assert {"torch", "lightning", "lczldl"} <= set(info["versions"])
    cfg = yaml.safe_load((dist_run / "config.yaml").read_text())
    assert cfg["train"]["regime"] == "dist" and cfg["model"]["width"] == 2 and cfg["train"]["max_epochs"] == 3
    assert [r["lr"] for r in rows] == pytest.approx([0.002] * 3)


def _val_loss_of(ckpt, store, target, loss):
    """Recompute the validation loss of a checkpoint independently of the training loop."""
    from lczldl.data.store import LCZDataset

    ds = LCZDataset(store, "val", target=target)
    batch = ds[np.arange(len(ds))]
    model = load_model(ckpt)
    with torch.no_grad():
        logp = model(batch["image"]).double()
    t = batch["target"].double()
    if loss == "kl":
        vals = torch.where(t > 0, t * (torch.log(t.clamp_min(1e-300)) - logp), torch.zeros_like(t)).sum(1)
    else:
        vals = -(t * logp).sum(1)
    return vals.mean().item()


def test_best_checkpoint_reproduces_recorded_val_loss(dist_run, tiny_store):
    info = json.loads((dist_run / "run.json").read_text())
    got = _val_loss_of(dist_run / "checkpoints" / "best.ckpt", tiny_store, "distribution", "kl")
    assert got == pytest.approx(info["best_val_loss"], abs=2e-5)


@pytest.mark.parametrize("regime, val_target, loss", [("onehot_ls", "onehot", "ce"),
                                                      ("dist_ls", "distribution", "kl"),
                                                      ("dawid_skene", "dawid_skene", "kl")])
def test_regimes_validate_on_their_unsmoothed_target(tiny_store, tmp_path, regime, val_target, loss):
    run = _train(tiny_store, tmp_path, regime, epochs=1)
    info = json.loads((run / "run.json").read_text())
    assert info["val_target"] == val_target and info["loss"] == loss
    got = _val_loss_of(run / "checkpoints" / "best.ckpt", tiny_store, val_target, loss)
    assert got == pytest.approx(info["best_val_loss"], abs=2e-5)


def test_same_seed_same_history_other_seed_differs(tiny_store, tmp_path):
    a = read_metrics_csv(_train(tiny_store, tmp_path / "a", "onehot", seed=1) / "metrics.csv")
    b = read_metrics_csv(_train(tiny_store, tmp_path / "b", "onehot", seed=1) / "metrics.csv")
    c = read_metrics_csv(_train(tiny_store, tmp_path / "c", "onehot", seed=2) / "metrics.csv")
    assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["val_loss"] for r in a] != [r["val_loss"] for r in c]


def test_finished_run_is_a_noop_and_interrupted_run_needs_resume(tiny_store, tmp_path, capsys):
    run = _train(tiny_store, tmp_path, "onehot", epochs=1)
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert _train(tiny_store, tmp_path, "onehot", epochs=1) == run
    assert "already finished" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="running")))  # as if killed
    with pytest.raises(RunError, match="resume=True"):
        _train(tiny_store, tmp_path, "onehot", epochs=2)
    with pytest.raises(RunError, match="model.width"):  # resume refuses a different config
        train_run(tiny_store, 0, tmp_path, run_config(TINY[:1] + ["model.width=4"] + TINY[2:], "onehot", 2),
                  resume=True, progress=False)
    run2 = train_run(tiny_store, 0, tmp_path, run_config(TINY, "onehot", 2), resume=True, progress=False)
    rows = read_metrics_csv(run2 / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert json.loads((run2 / "run.json").read_text())["status"] == "finished"


def test_channels_last_off_gives_the_same_function(tiny_store, tmp_path):
    # a tiny lr keeps Nadam's sign-like first steps from amplifying float rounding differences;
    # no dropout, since dropout masks are drawn in memory order (they differ between layouts)
    same = ["train.lr=1e-9", "model.dropout=0.0"]
    a = read_metrics_csv(_train(tiny_store, tmp_path / "a", "dist", epochs=1, extra=same) / "metrics.csv")
    b = read_metrics_csv(_train(tiny_store, tmp_path / "b", "dist", epochs=1,
                                extra=same + ["train.channels_last=false"]) / "metrics.csv")
    assert a[0]["val_loss"] == pytest.approx(b[0]["val_loss"], abs=1e-4)
    assert a[0]["train_loss"] == pytest.approx(b[0]["train_loss"], abs=1e-4)
    assert load_config(None, ["train.channels_last=false"]).train.channels_last is False


def test_production_lr_schedule_halves_after_each_step(tiny_store, tmp_path):
    """The lr the training loop used in each epoch (metrics.csv), past the first decays:
    lr0 * decay ** floor(epoch / step) with lr0 0.002, decay 0.5, step 2 -> 0.002 0.002 0.001 0.001 0.0005."""
    run = _train(tiny_store, tmp_path, "onehot", epochs=5, extra=["train.lr_step_epochs=2", "train.patience=10"])
    assert [r["lr"] for r in read_metrics_csv(run / "metrics.csv")] == pytest.approx(
        [0.002, 0.002, 0.001, 0.001, 0.0005], rel=1e-12)


def test_train_accepts_a_study_yaml_and_records_the_run_sections_only(tiny_store, tmp_path):
    from lczldl.cli.main import main

    cfg = tmp_path / "study.yaml"
    cfg.write_text("model:\n  depth: 5\n  width: 2\ntrain:\n  regime: dist\n  batch_size: 16\n"
                   "  num_threads: 1\nstudy:\n  regimes: [onehot, dist]\n  seeds: '0-4'\n  workers: 2\n")
    main(["train", "--data", str(tiny_store), "--out", str(tmp_path / "runs"), "--config", str(cfg),
          "--max-epochs", "1"])
    run = tmp_path / "runs" / "dist" / "seed0"                     # regime from the file
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs"] == 1 and "study" not in info["config"]
    assert set(yaml.safe_load((run / "config.yaml").read_text())) == {"data", "model", "train", "evaluation"}


@pytest.fixture(scope="module")
def agg_store(tiny_store, tmp_path_factory):
    """The tiny store with an agg_mace target: a sharpened vote distribution (what MACE-like
    posteriors look like), as prepare --aggregators mace would write it."""
    import shutil

    store = tmp_path_factory.mktemp("agg") / "store"
    shutil.copytree(tiny_store, store)
    for split in ("train", "val", "test"):
        d = np.load(store / split / "distribution.npy").astype(np.float64) ** 4 + 1e-3
        np.save(store / split / "agg_mace.npy", (d / d.sum(1, keepdims=True)).astype(np.float32))
    return store


@pytest.mark.parametrize("regime, loss", [("agg_mace", "kl"), ("agg_mace_onehot", "ce")])
def test_aggregator_regimes_train_and_validate_on_their_target(agg_store, tmp_path, regime, loss):
    run = _train(agg_store, tmp_path, regime, epochs=1)
    info = json.loads((run / "run.json").read_text())
    assert (info["train_target"], info["val_target"], info["loss"]) == (regime, regime, loss)
    got = _val_loss_of(run / "checkpoints" / "best.ckpt", agg_store, regime, loss)
    assert got == pytest.approx(info["best_val_loss"], abs=2e-5)
    post = np.load(agg_store / "val" / "agg_mace.npy")
    from lczldl.data.store import LCZDataset

    want = post if regime == "agg_mace" else np.eye(10, dtype=np.float32)[post.argmax(1)]
    np.testing.assert_array_equal(LCZDataset(agg_store, "val", target=regime).targets, want)


def test_aggregator_regime_without_its_target_is_a_one_line_error(tiny_store, tmp_path):
    from lczldl.errors import DataError

    with pytest.raises(DataError, match="no agg_glad target in the store .*aggregators=glad"):
        _train(tiny_store, tmp_path, "agg_glad", epochs=1)
    assert not (tmp_path / "agg_glad").exists()      # checked before the run folder is made
