"""evaluate --weights on a 17-class So2Sat LCZ42 store (no votes): the authors' 10-class model is
evaluated on the LCZ 1-10 images only and says so; a 17-class model on all of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lczldl.cli.main import main as cli_main
from lczldl.models.io import save_model
from lczldl.models.keras_import import from_keras
from lczldl.models.sen2lcz import Sen2LCZ

PER_CLASS = 3          # patches of each of the 17 classes per split


@pytest.fixture(scope="module")
def so2sat_store(tmp_path_factory):
    from lczldl.data.prepare import prepare_so2sat_store
    from lczldl.data.synth_so2sat import write_so2sat

    root = tmp_path_factory.mktemp("so2sat")
    write_so2sat(root / "v2", "2", {"train": PER_CLASS, "val": PER_CLASS, "test": PER_CLASS}, seed=1, sen1=False)
    prepare_so2sat_store(root / "v2", root / "store", progress=False)
    return root / "store"


def test_a_10_class_model_on_a_17_class_store(mirror, keras_dir, so2sat_store, tmp_path, capsys) -> None:
    out = tmp_path / "e"
    cli_main(["evaluate", "--weights", "authors-dist", "--data", str(so2sat_store), "--out", str(out),
              "--fit-temperature"])
    n_urban, n_all = 10 * PER_CLASS, 17 * PER_CLASS
    err = capsys.readouterr().err
    assert f"evaluated on the {n_urban} of {n_all} test images" in err and "(21 left out)" in err
    got = json.loads((out / "metrics.json").read_text())
    meta = got["meta"]
    assert meta["n"] == n_urban and meta["n_split"] == n_all and meta["classes"] == list(range(1, 11))
    assert meta["store_classes"] == list(range(1, 18)) and "10-class model" in meta["subset_note"]
    assert meta["distributions"] is False and "ce_distr" not in got          # no votes in this store
    # by hand: the Keras model on the test images whose label is LCZ 1-10
    labels = np.load(so2sat_store / "test" / "label.npy")
    keep = np.flatnonzero(labels < 10)
    x = torch.from_numpy(np.load(so2sat_store / "test" / "image.npy")[keep].astype(np.float32) / 10000.0)
    model = from_keras(keras_dir / "Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5")
    pred = model.predict_proba(x).numpy().argmax(1)
    assert got["oa"] == pytest.approx(float((pred == labels[keep]).mean()), abs=1e-12)
    assert len(got["per_class"]["support"]) == 10 and sum(got["per_class"]["support"]) == n_urban
    ts = json.loads((out / "metrics_ts.json").read_text())
    assert ts["meta"]["target"] == "onehot" and ts["meta"]["n_val"] == n_urban
    assert ts["temperature"] > 0 and "10-class model" in ts["meta"]["val_subset_note"]
    with np.load(out / "predictions.npz") as z:
        assert z["rows"].tolist() == keep.tolist() and z["probs"].shape == (n_urban, 10)


def test_a_17_class_model_uses_every_image(so2sat_store, tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = save_model(Sen2LCZ(num_classes=17, depth=5, width=2), tmp_path / "all.safetensors")
    cli_main(["evaluate", "--checkpoint", str(model), "--data", str(so2sat_store), "--out", str(tmp_path / "e")])
    assert "note:" not in capsys.readouterr().err
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert got["meta"]["n"] == 17 * PER_CLASS and got["meta"]["subset_note"] is None
    assert "oa_u" in got and "oa_bu" in got                                  # the LCZ community's, K = 17
