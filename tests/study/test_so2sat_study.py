"""A 17-class study on a So2Sat LCZ42 store (synthetic files in TorchGeo's layout, 3 patches per
class per file) end to end at toy size, and the refusals of regimes that need votes: ``lczldl
train`` and ``lczldl study`` exit 2 with one line naming onehot, onehot_ls, and write nothing."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import yaml

from lczldl.cli.main import main
from lczldl.data.prepare import prepare_so2sat_store
from lczldl.data.synth_so2sat import write_so2sat
from lczldl.evaluation import registry as G
from lczldl.evaluation.files import read_verdict
from lczldl.study.runner import run_study
from lczldl.viz.report import NO_VERDICT_WITHOUT_VOTES, NO_VOTES_NOTE

from . import fakework
from .test_runner import ROOT


@pytest.fixture(scope="module")
def so2sat_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("so2sat")
    write_so2sat(root / "v2", "2", {"train": 3, "val": 3, "test": 3}, seed=5, sen1=False)
    prepare_so2sat_store(root / "v2", root / "store", progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """The tiny demo's settings (resources/demo_tiny.yaml: 2 workers, so one torch thread per unit
    on 2 cores) with 1 epoch and no regimes chosen."""
    from importlib.resources import files

    cfg = yaml.safe_load(files("lczldl.resources").joinpath("demo_tiny.yaml").read_text())
    cfg["study"].pop("regimes")
    cfg["train"]["max_epochs"] = 1
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("argv", [
    ["train", "--regime", "dist"],
    ["train", "--regime", "dawid_skene", "--seed", "1"],
    ["study", "--regimes", "onehot,dist_ls"],
])
def test_vote_regimes_are_refused_before_anything_is_written(so2sat_store, tmp_path, capsys, argv):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main([argv[0], "--data", str(so2sat_store), "--out", str(out), *argv[1:]])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "needs expert votes" in err and err.endswith("use onehot, onehot_ls")
    assert not out.exists()


def test_a_so2sat_folder_given_to_study_says_prepare_it_first(so2sat_store, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["study", "--data", str(so2sat_store.parent / "v2"), "--out", str(tmp_path / "s")])
    assert e.value.code == 2 and "lczldl data prepare --so2sat" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_study_without_regimes_takes_the_ones_that_apply(so2sat_store, tmp_path, monkeypatch):
    """No regimes chosen on a store without votes: onehot and onehot_ls (fake unit work: the grid,
    not the training; the end-to-end study below trains one of them)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    info = run_study(data=so2sat_store, out=tmp_path / "study", seeds="0", work=fakework.work(fakework.__name__),
                     progress=False)
    assert info["regimes"] == ["onehot", "onehot_ls"] and info["status"] == "finished"
    assert sorted(u for u in info["units"] if u.startswith("train-")) == ["train-onehot-seed0", "train-onehot_ls-seed0"]


@pytest.mark.slow
def test_seventeen_class_study_end_to_end(so2sat_store, tiny_config, tmp_path):
    study = tmp_path / "study"
    main(["study", "--data", str(so2sat_store), "--out", str(study), "--config", str(tiny_config),
          "--regimes", "onehot"])
    info = json.loads((study / "study.json").read_text())
    assert info["regimes"] == ["onehot"] and info["status"] == "finished"
    run = study / "runs" / "onehot" / "seed0"
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["num_classes"] == 17
    with np.load(run / "predictions.npz") as z:
        assert z["probs"].shape == (51, 17) and "distributions" not in z.files and "votes" not in z.files
    per_class = json.loads((run / "metrics.json").read_text())["per_class"]
    assert per_class["support"] == [3] * 17 and len(per_class["f1"]) == 17
    with open(study / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = set(rows[0])
    assert {"oa_u_mean", "oa_bu_mean", "oa_u_lo", "lac_90_coverage_mean"} <= cols
    assert not {f"{k}_mean" for k in G.VOTE_METRICS} & cols                  # no ce_distr, vote coverage, ...
    assert {(r["regime"], r["method"]) for r in rows} >= {("onehot", "plain"), ("onehot", "ensemble")}
    report = (study / "report.md").read_text()
    assert NO_VOTES_NOTE in report and "LCZ community accuracies" in report
    # the paper's claims are about the votes: on a store without them the verdict has no rows
    assert not read_verdict(study / "verdict.csv") and NO_VERDICT_WITHOUT_VOTES in report
    assert "### Per class" in report and "| G Water | 3 |" in report
    figures = {p.stem for p in (study / "figures").glob("*.png")}
    assert "confusion_matrices" in figures and "reliability" in figures
    assert not figures & {"vote_entropy_bars", "voting_confusion", "metrics_by_entropy_bin", "entropy_hexbin",
                          "beyond_set_size_by_entropy"}


def test_a_pack_takes_the_store_classes_and_refuses_vote_regimes(so2sat_store, tiny_config, tmp_path):
    """The packed engine (the CUDA fast path, here on CPU) builds 17-output members from the store."""
    from lczldl.config import load_config
    from lczldl.errors import DataError
    from lczldl.training.packed import train_pack

    cfg = load_config(tiny_config)
    with pytest.raises(DataError, match="train.regime=dist needs expert votes"):
        train_pack(so2sat_store, [("onehot", 0), ("dist", 0)], tmp_path / "runs", cfg, device="cpu")
    assert not (tmp_path / "runs").exists()
    res = train_pack(so2sat_store, [("onehot", 0), ("onehot_ls", 1)], tmp_path / "runs", cfg, device="cpu")
    assert [r.status for r in res] == ["finished", "finished"]
    for r in res:
        assert yaml.safe_load((r.run_dir / "config.yaml").read_text())["model"]["num_classes"] == 17
        assert json.loads((r.run_dir / "run.json").read_text())["config"]["model"]["num_classes"] == 17
