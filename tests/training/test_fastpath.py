"""Which loop trains a run (training.fastpath): Lightning on CPU, the packed engine where CUDA is
(told, never faked into results) and the config allows it; train_run's delegation to train_pack,
run for real on CPU through train.engine=packed."""

from __future__ import annotations

import json

import pytest
import torch

from lczldl.config import load_config
from lczldl.errors import ConfigError
from lczldl.training import fastpath
from lczldl.training.callbacks import read_metrics_csv
from lczldl.training.fastpath import LIGHTNING, PACKED, choose_engine, pack_refusal
from lczldl.training.packed import PackResult
from lczldl.training.run import train_run

from .conftest import TINY, run_config


@pytest.mark.parametrize("settings, cuda, n_gpus, expected", [
    ([], False, 0, LIGHTNING),                                  # CPU: Lightning (packing measured slower)
    ([], True, 1, PACKED),                                      # CUDA: the fast path
    (["train.precision=bf16-mixed"], True, 1, PACKED),
    (["train.precision=16-mixed"], True, 1, LIGHTNING),
    (["train.precision=64-true"], True, 1, LIGHTNING),
    (["train.logger=tensorboard"], True, 1, LIGHTNING),
    (["train.logger=mlflow"], True, 1, LIGHTNING),
    (["train.devices=2"], True, 2, LIGHTNING),
    (["train.devices=auto"], True, 1, PACKED),                 # auto on one visible GPU is one device
    (["train.devices=auto"], True, 2, LIGHTNING),
    (["train.devices=-1"], True, 4, LIGHTNING),
    (["train.strategy=ddp"], True, 1, LIGHTNING),
    (["train.accelerator=cpu"], True, 1, LIGHTNING),
    (["train.accelerator=gpu"], True, 1, PACKED),
    (["train.engine=lightning"], True, 1, LIGHTNING),
    (["train.engine=packed"], False, 0, PACKED),                # asked for: also on CPU
])
def test_choose_engine(settings, cuda, n_gpus, expected):
    assert choose_engine(load_config(None, settings), cuda=cuda, n_gpus=n_gpus) == expected


def test_engine_packed_with_a_config_it_cannot_train_is_a_config_error():
    for setting, key in (("train.logger=tensorboard", "train.logger"), ("train.precision=16-mixed", "train.precision"),
                         ("train.devices=2", "train.devices")):
        cfg = load_config(None, ["train.engine=packed", setting])
        with pytest.raises(ConfigError, match=f"^train.engine=packed cannot train with {key}"):
            choose_engine(cfg, cuda=True, n_gpus=2)
    assert pack_refusal(load_config(None, None)) is None


def test_this_machine_picks_lightning_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert fastpath.cuda_devices() == (False, 0)
    assert choose_engine(load_config(None, None), *fastpath.cuda_devices()) == LIGHTNING


def test_train_run_delegates_to_the_pack_when_cuda_is_present(tiny_store, tmp_path, monkeypatch):
    """Told that CUDA is there, train_run hands the run to train_pack as a pack of one (the very
    config object it was given, resolved once); nothing is trained here."""
    from lczldl.training import packed
    from lczldl.training import run as run_module

    calls = []

    def spy(data, members, out, cfg, resume=False, **kw):
        calls.append({"members": members, "cfg": cfg, "resume": resume, **kw})
        (regime, seed), = members
        return [PackResult(regime, seed, out / regime / f"seed{seed}", "finished", 3)]

    monkeypatch.setattr(run_module, "cuda_devices", lambda: (True, 1))   # what train_run asks
    monkeypatch.setattr(packed, "train_pack", spy)
    cfg = run_config(["train.precision=bf16-mixed", "train.num_threads=2"], "dist", 3)
    run = train_run(tiny_store, 4, tmp_path, cfg, progress=False)
    assert run == tmp_path / "dist" / "seed4"
    (call,) = calls
    assert call["members"] == [("dist", 4)] and call["cfg"] is cfg and call["resume"] is False
    # a config the pack cannot train stays on Lightning: the spy is not called (trained for real on CPU)
    train_run(tiny_store, 5, tmp_path, run_config(TINY + ["train.precision=64-true"], "dist", 1),
              progress=False)
    assert len(calls) == 1 and json.loads((tmp_path / "dist" / "seed5" / "run.json").read_text())["status"] == "finished"


def test_engine_packed_trains_a_single_run_on_cpu(tiny_store, tmp_path, capsys):
    """train.engine=packed on CPU: train_run's delegation for real; the run folder is a solo
    run's (metrics.csv per epoch, checkpoints, run.json) plus the pack record."""
    run = train_run(tiny_store, 1, tmp_path, run_config(TINY + ["train.engine=packed"], "onehot", 2))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs"] == 2
    assert info["pack"] == {"members": ["onehot/seed1"], "device": "cpu", "precision": "fp32"}
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    err = capsys.readouterr().err
    assert "packed engine" in err and f"epoch 1 train_loss {rows[1]['train_loss']:.4f}" in err
    # finished: a rerun is a no-op, as for a Lightning run
    train_run(tiny_store, 1, tmp_path, run_config(TINY + ["train.engine=packed"], "onehot", 2))
    assert "already finished" in capsys.readouterr().err


def test_engine_packed_refusal_writes_nothing(tiny_store, tmp_path):
    with pytest.raises(ConfigError, match="train.engine=packed cannot train with train.precision=16-mixed"):
        train_run(tiny_store, 0, tmp_path,
                  run_config(TINY + ["train.engine=packed", "train.precision=16-mixed"], "dist"))
    assert not (tmp_path / "dist").exists()


def test_precision_values_each_mean_one_thing():
    from lczldl.training.fastpath import PACK_PRECISIONS, lightning_precision, tf32_settings

    assert choose_engine(load_config(None, ["train.precision=32-tf32"]), cuda=True, n_gpus=1) == PACKED
    assert PACK_PRECISIONS == {"32-true": False, "32-tf32": False, "bf16-mixed": True}      # bf16 autocast or not
    assert [lightning_precision(p) for p in ("32-true", "32-tf32", "bf16-mixed", "16-mixed", "64-true")] == [
        "32-true", "32-true", "bf16-mixed", "16-mixed", "64-true"]
    flags = lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)  # noqa: E731
    before = flags()
    for precision, on in (("32-true", False), ("32-tf32", True), ("bf16-mixed", False), ("64-true", False)):
        with tf32_settings(precision):
            assert flags() == (on, on), precision
        assert flags() == before
    for precision, why in (("16-mixed", "loss scaler"), ("64-true", "Lightning loop")):
        assert why in pack_refusal(load_config(None, [f"train.precision={precision}"]))


def test_backend_settings_are_explicit_and_restored(monkeypatch):
    import torch.utils.deterministic as det

    from lczldl.training.fastpath import backend_settings

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "x")       # restored to what it was after the test
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    state = lambda: (torch.are_deterministic_algorithms_enabled(),  # noqa: E731
                     torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
                     det.fill_uninitialized_memory, torch.backends.cudnn.allow_tf32)
    before = state()
    cases = {("cpu", True): (True, False, before[2], before[3], False),
             ("cpu", False): (False, False, before[2], before[3], False),
             ("cuda", True): (True, True, False, False, False),     # deterministic kernels, no autotuning, no NaN fill
             ("cuda", False): (False, True, True, False, False)}    # autotuned fixed shapes
    for (device, deterministic), expected in cases.items():
        cfg = load_config(None, [f"train.deterministic={str(deterministic).lower()}"])
        with backend_settings(cfg.train, device):
            assert state() == expected, (device, deterministic)
        assert state() == before
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
