"""export-weights: a tiny trained and evaluated run -> one weights file with the same probabilities
and its record (classes, bands, regime, store checksum, fitted temperature, conformal thresholds),
which `weights show`, `predict --checkpoint` (temperature auto) and `evaluate --checkpoint` use;
`evaluate --weights/--checkpoint` against the run's own evaluation and a hand computation."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lczldl.cli.main import main as cli_main
from lczldl.config import EvaluationConfig
from lczldl.constants import BANDS
from lczldl.evaluation.model_eval import label_map, nameable, subset_note
from lczldl.maps.predict import resolve_temperature
from lczldl.models.io import load_model
from lczldl.models.weights_file import read_weights_meta


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, training_helpers):
    """(store, run): a tiny onehot run, 3 epochs, evaluated (temperature, 2 MC passes, conformal)."""
    from lczldl.evaluation.runs import calibrate_run, evaluate_run
    from lczldl.training.run import train_run

    h = training_helpers
    root = tmp_path_factory.mktemp("export")
    store = h.write_tiny_store(root / "store")
    run = train_run(store, 0, root / "runs", h.run_config(h.TINY, "onehot", 3), progress=False)
    ev = EvaluationConfig(mc_passes=2)
    evaluate_run(run, ev, progress=False)
    calibrate_run(run, ev, progress=False)
    return store, run


def _test_images(store: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(store / "test" / "image.npy").astype(np.float32) / 10000.0)


def test_export_round_trip(evaluated, tmp_path, capsys) -> None:
    store, run = evaluated
    out = tmp_path / "w.safetensors"
    cli_main(["export-weights", str(run), "--out", str(out)])
    x = _test_images(store)
    want = load_model(run / "checkpoints" / "best.ckpt").predict_proba(x).numpy()
    np.testing.assert_array_equal(load_model(out).predict_proba(x).numpy(), want)

    meta = read_weights_meta(out)
    ts = json.loads((run / "metrics_ts.json").read_text())
    beyond = json.loads((run / "beyond_temperature.json").read_text())["detail"]["sets"]
    assert meta["regime"] == "onehot" and meta["seed"] == 0
    assert meta["classes"] == list(range(1, 11)) and meta["bands"] == list(BANDS)
    assert meta["scaling"]["dn_divisor"] == 10000.0
    assert meta["store"]["checksum"] == hashlib.sha256((store / "manifest.json").read_bytes()).hexdigest()
    assert meta["temperature"] == ts["temperature"] and meta["temperature"] != 1.0
    assert set(meta["conformal"]) == {"plain", "temperature", "mc_dropout"}
    assert meta["conformal"]["temperature"]["lac_90"] == {"score": "lac", "level": 0.9,
                                                          "qhat": beyond["lac_90"]["qhat"]}
    assert meta["source"]["checkpoint_sha256"] == hashlib.sha256(
        (run / "checkpoints" / "best.ckpt").read_bytes()).hexdigest()
    assert meta["model_kwargs"]["width"] == 2

    capsys.readouterr()
    cli_main(["weights", "show", str(out)])
    shown = dict(x.split(": ", 1) for x in capsys.readouterr().out.splitlines())
    assert float(shown["temperature"]) == ts["temperature"] and shown["regime"] == "onehot"
    assert json.loads(shown["conformal"])["plain"]["aps_95"]["qhat"] == json.loads(
        (run / "beyond_plain.json").read_text())["detail"]["sets"]["aps_95"]["qhat"]
    # predict's temperature "auto" reads the file's own
    assert resolve_temperature(out, "auto") == ts["temperature"]

    # the checkpoint path finds its run too; a checkpoint outside a run gets no run record
    via_ckpt = tmp_path / "c.safetensors"
    cli_main(["export-weights", str(run / "checkpoints" / "best.ckpt"), "--out", str(via_ckpt)])
    assert read_weights_meta(via_ckpt)["temperature"] == ts["temperature"]
    lone = tmp_path / "lone.ckpt"
    shutil.copyfile(run / "checkpoints" / "best.ckpt", lone)
    cli_main(["export-weights", str(lone), "--out", str(tmp_path / "l.safetensors")])
    lone_meta = read_weights_meta(tmp_path / "l.safetensors")
    assert lone_meta["source"]["kind"] == "checkpoint" and "temperature" not in lone_meta
    assert lone_meta["classes"] == list(range(1, 11))


def test_evaluate_an_exported_file_equals_the_runs_evaluation(evaluated, tmp_path, capsys) -> None:
    store, run = evaluated
    w = tmp_path / "w.safetensors"
    cli_main(["export-weights", str(run), "--out", str(w)])
    cli_main(["evaluate", "--checkpoint", str(w), "--data", str(store), "--out", str(tmp_path / "e"),
              "--fit-temperature"])
    mine = json.loads((tmp_path / "e" / "metrics.json").read_text())
    theirs = json.loads((run / "metrics.json").read_text())
    for key in ("oa", "ece", "nll", "kappa", "ce_distr"):
        assert mine[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-9), key
    assert mine["meta"]["n"] == 24 and mine["meta"]["subset_note"] is None and mine["meta"]["temperature"] == 1.0
    ts_mine = json.loads((tmp_path / "e" / "metrics_ts.json").read_text())
    ts_run = json.loads((run / "metrics_ts.json").read_text())
    assert ts_mine["temperature"] == pytest.approx(ts_run["temperature"], rel=1e-6)
    assert ts_mine["ece"] == pytest.approx(ts_run["ece"], rel=1e-6, abs=1e-9)
    assert "temperature" in capsys.readouterr().out


def test_evaluate_named_weights_by_hand(mirror, keras_dir, evaluated, tmp_path) -> None:
    """The authors' model on the tiny store: accuracy recomputed from the Keras file directly."""
    from lczldl.models.keras_import import from_keras

    store, _ = evaluated
    cli_main(["evaluate", "--weights", "authors-dist", "--data", str(store), "--out", str(tmp_path / "e")])
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())
    model = from_keras(keras_dir / "Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5")
    pred = model.predict_proba(_test_images(store)).numpy().argmax(1)
    labels = np.load(store / "test" / "label.npy")
    assert got["oa"] == pytest.approx(float((pred == labels).mean()), abs=1e-12)
    assert got["meta"]["model"] == "authors-dist" and got["meta"]["regime"] == "dist"
    assert got["meta"]["classes"] == list(range(1, 11))


def test_usage_errors_are_one_line(evaluated, tmp_path, capsys) -> None:
    store, run = evaluated
    cases = [(["evaluate", "--data", str(store)], "--runs"),
             (["evaluate", "--weights", "authors-dist", "--checkpoint", "x"], "not both"),
             (["evaluate", "--checkpoint", "x.ckpt", "--data", str(store)], "--out"),
             (["evaluate", "--checkpoint", "x.ckpt", "--runs", str(run), "--data", str(store), "--out", "o"],
              "not both"),
             (["predict", "--weights", "authors-dist", "--checkpoint", "x", "--scene", "s", "--out", "o"], "not both"),
             (["predict", "--scene", "s", "--out", "o"], "--weights")]
    for argv, words in cases:
        with pytest.raises(SystemExit) as exit_:
            cli_main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and words in err[0], (argv, err)


def test_only_the_images_a_model_can_name_are_evaluated() -> None:
    """A 10-class model (LCZ 1-10) on a 17-class store: by hand."""
    mapping = label_map(list(range(1, 18)), list(range(1, 11)))
    assert mapping.tolist() == list(range(10)) + [-1] * 7
    rows, labels = nameable(np.array([0, 12, 9, 16, 3]), mapping)
    assert rows.tolist() == [0, 2, 4] and labels.tolist() == [0, 9, 3]
    note = subset_note(list(range(1, 11)), list(range(1, 18)), 3, 5, "test")
    assert note == ("a 10-class model (LCZ 1-10) on a 17-class store: evaluated on the 3 of 5 test images "
                    "whose label it can name (2 left out)")
    assert subset_note(list(range(1, 11)), list(range(1, 11)), 5, 5, "test") is None
    # a model that orders its classes otherwise is mapped by LCZ id, not by index
    assert label_map([1, 2, 3], [3, 1]).tolist() == [1, -1, 0]
