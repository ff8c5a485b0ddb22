"""Packed runs' folders against solo runs' (files, run.json, config, checkpoint form, a solo
resume of a packed checkpoint, evaluation), early stopping of one member while the others go on,
a failing member, and the all-or-nothing checkpoint commit."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from lczldl.config import EvaluationConfig
from lczldl.errors import RunError
from lczldl.evaluation.runs import evaluate_run
from lczldl.models.io import load_model
from lczldl.training import packed_ckpt, packed_engine
from lczldl.training.callbacks import CSV_FIELDS, read_metrics_csv
from lczldl.training.packed import train_pack
from lczldl.training.packed_engine import PackEngine
from lczldl.training.run import train_run

from .conftest import TINY, run_config
from .test_run import _val_loss_of


def _ck(run, which="last"):
    return torch.load(run / "checkpoints" / f"{which}.ckpt", weights_only=False, map_location="cpu")


@pytest.fixture(scope="module")
def pair(tiny_store, tmp_path_factory):
    """A pack (onehot seed 0, dist seed 3) and the solo run of dist seed 3, 2 epochs each."""
    out = tmp_path_factory.mktemp("pair")
    results = train_pack(tiny_store, [("onehot", 0), ("dist", 3)], out / "pack", run_config(TINY, max_epochs=2))
    solo = train_run(tiny_store, 3, out / "solo", run_config(TINY, "dist", 2), progress=False)
    return results, solo, out


def test_pack_writes_solo_shaped_run_folders(pair, tiny_store):
    results, solo, out = pair
    assert [(r.regime, r.seed, r.status, r.epochs) for r in results] == [("onehot", 0, "finished", 2),
                                                                        ("dist", 3, "finished", 2)]
    run = results[1].run_dir
    assert run == out / "pack" / "dist" / "seed3"
    names = lambda d: sorted(p.relative_to(d).as_posix() for p in d.rglob("*"))  # noqa: E731
    assert names(run) == names(solo)                        # no pending file or journal left behind
    assert not list((out / "pack").glob(".*"))
    assert (run / "config.yaml").read_text() == (solo / "config.yaml").read_text()
    a, b = (json.loads((d / "run.json").read_text()) for d in (run, solo))
    assert set(a) == set(b) | {"pack"} and a["pack"]["members"] == ["onehot/seed0", "dist/seed3"]
    for key in ("status", "regime", "seed", "data", "data_checksum", "train_target", "val_target", "loss",
                "config", "epochs", "stopped_early", "resumed"):
        assert a[key] == b[key], key
    assert a["best_checkpoint"] == str((run / "checkpoints" / "best.ckpt").resolve())
    rows = read_metrics_csv(run / "metrics.csv")
    assert (run / "metrics.csv").read_text().splitlines()[0] == ",".join(CSV_FIELDS)
    assert [r["epoch"] for r in rows] == [0, 1] and [r["lr"] for r in rows] == [0.002, 0.002]
    best = min(rows, key=lambda r: r["val_loss"])
    assert (a["best_epoch"], a["best_val_loss"]) == (best["epoch"], best["val_loss"])
    # the recorded validation loss is the best checkpoint's, recomputed by the solo model
    assert _val_loss_of(run / "checkpoints" / "best.ckpt", tiny_store, "distribution", "kl") == pytest.approx(
        a["best_val_loss"], abs=2e-5)


def test_checkpoints_have_the_solo_form(pair):
    results, solo, _ = pair
    p, s = _ck(results[1].run_dir), _ck(solo)
    assert p.keys() == s.keys()
    assert (p["epoch"], p["global_step"]) == (s["epoch"], s["global_step"]) == (1, 12)
    assert p["loops"] == s["loops"]                         # Lightning's progress of an end-of-epoch save
    assert p["hyper_parameters"] == s["hyper_parameters"]
    assert p["state_dict"].keys() == s["state_dict"].keys()
    assert p["callbacks"].keys() == s["callbacks"].keys()
    assert p["lr_schedulers"] == s["lr_schedulers"]
    assert p["optimizer_states"][0]["param_groups"] == s["optimizer_states"][0]["param_groups"]
    ps, ss = p["optimizer_states"][0]["state"], s["optimizer_states"][0]["state"]
    assert ps.keys() == ss.keys() and all(ps[i].keys() == ss[i].keys() for i in ss)
    assert all(torch.equal(ps[i]["step"], ss[i]["step"]) for i in ss)
    model = load_model(results[1].run_dir / "checkpoints" / "best.ckpt")
    assert model.model_kwargs == load_model(solo / "checkpoints" / "best.ckpt").model_kwargs


def test_evaluate_consumes_a_packed_run(pair):
    results, _, _ = pair
    metrics = evaluate_run(results[0].run_dir, EvaluationConfig(), progress=False)
    assert 0.0 <= metrics["oa"] <= 1.0 and (results[0].run_dir / "predictions.npz").is_file()


def test_members_start_from_the_solo_init(tiny_store, tmp_path):
    """With a vanishing lr the weights after one epoch are the initial ones: the solo LCZModule's
    after seeding with the member's seed (what train_run does)."""
    import lightning as L

    from lczldl.training.module import LCZModule

    train_pack(tiny_store, [("dist", 7), ("onehot", 2)], tmp_path,
               run_config(TINY + ["train.lr=1e-30"], max_epochs=1))
    for regime, seed in (("dist", 7), ("onehot", 2)):
        L.seed_everything(seed, verbose=False)
        ref = LCZModule({"depth": 5, "width": 2}, loss="ce", lr=1e-30, lr_decay=0.5, lr_step_epochs=5,
                        nadam_eps=1e-7, nadam_momentum_decay=4e-3, seed=seed).state_dict()
        got = _ck(tmp_path / regime / f"seed{seed}")["state_dict"]
        for key in ref:
            if "running_" not in key and "num_batches" not in key:
                torch.testing.assert_close(got[key], ref[key], atol=1e-25, rtol=0)


def test_a_solo_resume_continues_a_packed_run(tiny_store, tmp_path):
    """A packed member's last.ckpt is a valid resume point for `lczldl train --resume`."""
    train_pack(tiny_store, [("onehot", 1), ("dist", 1)], tmp_path,
               run_config(TINY + ["train.lr_step_epochs=2"], max_epochs=2))
    run = tmp_path / "dist" / "seed1"
    before = read_metrics_csv(run / "metrics.csv")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="running")))   # as if killed
    train_run(tiny_store, 1, tmp_path, run_config(TINY + ["train.lr_step_epochs=2"], "dist", 3),
              resume=True, progress=False)
    rows = read_metrics_csv(run / "metrics.csv")
    assert rows[:2] == before
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[2]["lr"] == pytest.approx(0.001)
    assert _ck(run)["global_step"] == 18
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_a_stopped_member_is_frozen_while_the_others_go_on(tiny_store, tmp_path, monkeypatch):
    """Scripted validation losses (patience 2): member A improves only in epoch 0 (epoch 1 ties,
    which is no improvement) and stops after epoch 2; member B improves every epoch and trains
    all 5. A's files do not change after it stopped."""
    script = {"A": [1.0, 1.0, 1.2], "B": [1.0, 0.9, 0.8, 0.7, 0.6]}
    calls = []
    original = PackEngine.validate

    def validate(self):
        loss, acc = original(self)
        e = len(calls)
        calls.append(self.k)
        names = ["A", "B"] if self.k == 2 else ["B"]
        return np.array([script[n][e] for n in names]), acc

    monkeypatch.setattr(PackEngine, "validate", validate)
    frozen = {}

    def on_epoch(epoch, results):
        if epoch == 2:
            frozen.update({f: hashlib.sha256(p.read_bytes()).hexdigest() for f in ("last", "best")
                           for p in [tmp_path / "dist" / "seed0" / "checkpoints" / f"{f}.ckpt"]})

    res = train_pack(tiny_store, [("dist", 0), ("dist", 1)], tmp_path,
                     run_config(TINY + ["train.patience=2"], max_epochs=5), on_epoch=on_epoch)
    assert calls == [2, 2, 2, 1, 1]                          # A left the pack after epoch 2
    a, b = (json.loads((r.run_dir / "run.json").read_text()) for r in res)
    assert (a["status"], a["epochs"], a["best_epoch"], a["best_val_loss"], a["stopped_early"]) == \
        ("finished", 3, 0, 1.0, True)
    assert (b["status"], b["epochs"], b["best_epoch"], b["stopped_early"]) == ("finished", 5, 4, False)
    ck = res[0].run_dir / "checkpoints"
    assert frozen == {f: hashlib.sha256((ck / f"{f}.ckpt").read_bytes()).hexdigest() for f in ("last", "best")}
    assert (_ck(res[0].run_dir)["epoch"], _ck(res[0].run_dir, "best")["epoch"]) == (2, 0)
    early = [v for k, v in _ck(res[0].run_dir)["callbacks"].items() if k.startswith("EarlyStopping")][0]
    assert early["wait_count"] == 2 and early["stopped_epoch"] == 2


def test_a_failing_member_fails_alone(tiny_store, tmp_path, monkeypatch):
    """(e) A member whose targets are infinite fails in epoch 0 with the reason in its run.json; the
    others finish, and their epoch 0 equals the same pack's without the fault (no NaN leaks)."""
    members = [("onehot", 0), ("dist", 0), ("dawid_skene", 0)]
    healthy = train_pack(tiny_store, members, tmp_path / "ok", run_config(TINY, max_epochs=2))
    make_targets = packed_engine.make_targets

    def poisoned(arrays, target, eps=0.1):
        t = make_targets(arrays, target, eps)
        return np.full_like(t, np.inf) if target == "dawid_skene" else t

    monkeypatch.setattr(packed_engine, "make_targets", poisoned)
    res = train_pack(tiny_store, members, tmp_path / "bad", run_config(TINY, max_epochs=2))
    assert [r.status for r in res] == ["finished", "finished", "failed"]
    assert "non-finite training loss" in res[2].error and "epoch 0" in res[2].error
    info = json.loads((res[2].run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["error"] == res[2].error
    assert not (res[2].run_dir / "checkpoints" / "last.ckpt").exists()
    for ok, bad in zip(healthy[:2], res[:2], strict=True):
        r0, r1 = (read_metrics_csv(r.run_dir / "metrics.csv") for r in (ok, bad))
        assert len(r1) == 2 and all(math.isfinite(r["val_loss"]) for r in r1)
        assert {k: r0[0][k] for k in ("train_loss", "val_loss", "val_acc")} == \
            {k: r1[0][k] for k in ("train_loss", "val_loss", "val_acc")}


def test_unfinished_members_need_resume(tiny_store, tmp_path):
    train_pack(tiny_store, [("dist", 2)], tmp_path, run_config(TINY, max_epochs=1))
    run = tmp_path / "dist" / "seed2"
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="running")))
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    with pytest.raises(RunError, match="resume=True"):
        train_pack(tiny_store, [("onehot", 2), ("dist", 2)], tmp_path, run_config(TINY, max_epochs=2))
    assert not (tmp_path / "onehot").exists() and (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp


def test_commit_is_all_or_nothing(tmp_path, monkeypatch):
    runs = [tmp_path / "dist" / f"seed{s}" for s in (0, 1)]
    files = {}
    for r in runs:
        (r / "checkpoints").mkdir(parents=True)
        for name in ("last", "best"):
            (r / "checkpoints" / f"{name}.ckpt").write_bytes(b"old")
            files[r / "checkpoints" / f"{name}.ckpt"] = f"new {r.name} {name}".encode()

    def killed(journal):               # the pack dies after the journal and one rename
        import os

        src, dst = json.loads(journal.read_text())["renames"][0]
        os.replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(packed_ckpt, "_apply", killed)
    with pytest.raises(KeyboardInterrupt):
        packed_ckpt.commit(tmp_path, files, "test")
    assert sorted(p.read_bytes() for p in files).count(b"old") == 3
    monkeypatch.undo()
    packed_ckpt.recover_commits(tmp_path, runs)
    assert all(p.read_bytes() == data for p, data in files.items())
    assert not list(tmp_path.glob(".pack-commit-*")) and not list(tmp_path.rglob("*.pending"))
    # pending files without a journal (killed before it was written) are dropped, old files kept
    packed_ckpt.pending(runs[0] / "checkpoints" / "last.ckpt").write_bytes(b"half")
    packed_ckpt.recover_commits(tmp_path, runs)
    assert not list(tmp_path.rglob("*.pending")) and files[runs[0] / "checkpoints" / "last.ckpt"] == \
        (runs[0] / "checkpoints" / "last.ckpt").read_bytes()
