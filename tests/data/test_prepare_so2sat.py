"""``lczldl data prepare --so2sat``: So2Sat LCZ42 in TorchGeo's layout (synthetic files written at
test time, 3 patches of each of the 17 classes per file) -> a store without votes; the v3
validation carve recorded and reproducible; pixels cross-checked against the h5 files by hand."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from lczldl.cli.main import main
from lczldl.config import PrepareConfig
from lczldl.data.labels import smooth_one_hot
from lczldl.data.prepare import prepare_so2sat_store
from lczldl.data.splits import carve_validation
from lczldl.data.store import LCZDataset, make_targets, open_store, require_votes
from lczldl.data.synth_so2sat import write_so2sat
from lczldl.errors import DataError

PER_CLASS = 3


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """(v2 folder, v3 top folder with the random variant): 3 patches per class per file."""
    root = tmp_path_factory.mktemp("so2sat")
    write_so2sat(root / "v2", "2", {"train": PER_CLASS, "val": PER_CLASS, "test": PER_CLASS}, seed=1)
    write_so2sat(root / "v3", "3_random", {"train": PER_CLASS, "test": PER_CLASS}, seed=2)
    return root / "v2", root / "v3"


@pytest.fixture(scope="module")
def v2_store(releases, tmp_path_factory):
    out = tmp_path_factory.mktemp("st") / "v2store"
    prepare_so2sat_store(releases[0], out, progress=False)
    return out


def _h5(path, key, rows=None):
    with h5py.File(path, "r") as f:
        return f[key][()] if rows is None else f[key][np.sort(rows)]


def test_v2_store_arrays_and_manifest(releases, v2_store):
    v2, _ = releases
    m = json.loads((v2_store / "manifest.json").read_text())
    assert m["votes"] is False and m["classes"] == list(range(1, 18)) and m["so2sat_version"] == "2"
    assert m["config"]["validation"] == {"from": "validation.h5"}
    assert set(m["sources"]) == {"training.h5", "validation.h5", "testing.h5"}
    for split, name in (("train", "training.h5"), ("val", "validation.h5"), ("test", "testing.h5")):
        d = v2_store / split
        assert sorted(p.name for p in d.iterdir()) == ["image.npy", "label.npy", "row.npy"]  # no vote arrays
        label, row = np.load(d / "label.npy"), np.load(d / "row.npy")
        onehot = _h5(v2 / name, "label")
        np.testing.assert_array_equal(row, np.arange(17 * PER_CLASS))           # every row, file order
        np.testing.assert_array_equal(label, np.nonzero(onehot)[1])               # LCZ 1-17 -> 0..16
        assert m["splits"][split]["class_counts"] == [PER_CLASS] * 17 and m["splits"][split]["source"] == name
        img = np.load(d / "image.npy")
        sen2 = _h5(v2 / name, "sen2")
        assert img.dtype == np.uint16 and img.shape == (51, 10, 32, 32)
        np.testing.assert_array_equal(img, np.rint(sen2 * 10000).astype(np.uint16).transpose(0, 3, 1, 2))


def test_store_without_votes_serves_one_hot_targets_only(v2_store):
    store = open_store(v2_store)
    assert not store.has_votes and store.num_classes == 17 and store.classes == list(range(1, 18))
    a = store.split("train")
    assert a.distribution is None and a.votes is None and a.vote_entropy is None and a.soft_targets() == {}
    t = make_targets(a, "onehot")
    assert t.shape == (51, 17) and (t.argmax(1) == a.label).all() and t.sum() == 51
    ls = make_targets(a, "onehot_ls", eps=0.1)
    np.testing.assert_allclose(ls[np.arange(51), a.label], 0.9 + 0.1 / 17, rtol=1e-6)   # eps / 17, by hand
    np.testing.assert_array_equal(make_targets(a, "onehot_ls17", eps=0.1), smooth_one_hot(a.label, 0.1, 17))
    for target in ("distribution", "dist_ls", "dawid_skene", "agg_mace"):
        with pytest.raises(DataError, match=f"target {target.replace('dist_ls', 'distribution_ls')} needs expert votes"):
            make_targets(a, target)
    assert LCZDataset(store, "val")[0]["target"].shape == (17,)
    with pytest.raises(DataError, match=r"train\.regime=dist,dawid_skene needs expert votes.*use onehot, onehot_ls$"):
        require_votes(store, ["onehot", "dist", "dawid_skene"])
    require_votes(store, ["onehot", "onehot_ls"])                                  # these apply: no error


def test_v3_validation_is_carved_recorded_and_reproducible(releases, tmp_path):
    _, v3 = releases
    a = prepare_so2sat_store(v3, tmp_path / "a", "random", PrepareConfig(seed=7), progress=False)
    b = prepare_so2sat_store(v3 / "random", tmp_path / "b", None, PrepareConfig(seed=7), progress=False)
    c = prepare_so2sat_store(v3, tmp_path / "c", "random", PrepareConfig(seed=8), progress=False)
    assert c["config"]["validation"]["seed"] == 8
    assert a["so2sat_version"] == b["so2sat_version"] == "3_random"
    val = a["config"]["validation"]
    assert val["from"] == "random/training.h5" and val["share"] == 0.1 and val["seed"] == 7
    assert "neighbouring patches" in val["note"]
    labels = np.nonzero(_h5(v3 / "random" / "training.h5", "label"))[1]
    rows = {s: np.load(tmp_path / "a" / s / "row.npy") for s in ("train", "val", "test")}
    # one of the three patches of each class goes to validation (min(n - 1, max(1, round(0.3)))), the rest train
    np.testing.assert_array_equal(np.bincount(labels[rows["val"]], minlength=17), np.ones(17))
    assert np.intersect1d(rows["train"], rows["val"]).size == 0
    np.testing.assert_array_equal(np.union1d(rows["train"], rows["val"]), np.arange(51))
    np.testing.assert_array_equal(rows["val"], carve_validation(labels, 0.1, 7))   # the documented draw
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "val" / "row.npy"), rows["val"])     # same seed
    assert not np.array_equal(np.load(tmp_path / "c" / "val" / "row.npy"), rows["val"])        # other seed
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "val" / "label.npy"), labels[rows["val"]])
    assert a["splits"]["test"]["source"] == "random/testing.h5" and a["splits"]["test"]["n"] == 51


def test_carve_validation_rule_by_hand():
    labels = np.array([0] * 20 + [1] * 2 + [2])          # 20 -> round(2.0) = 2; 2 -> 1; 1 row -> none
    val = carve_validation(labels, 0.1, 0)
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 0]
    with pytest.raises(DataError, match="share must lie in"):
        carve_validation(labels, 1.0, 0)


def test_rerun_is_a_no_op_and_paths_are_checked(releases, v2_store, tmp_path):
    v2, v3 = releases
    before = (v2_store / "manifest.json").read_text()
    prepare_so2sat_store(v2, v2_store, progress=False)
    assert (v2_store / "manifest.json").read_text() == before                        # same files: untouched
    with pytest.raises(DataError, match="So2Sat v3 folder; choose a variant"):
        prepare_so2sat_store(v3, tmp_path / "x", progress=False)
    with pytest.raises(DataError, match="inside the So2Sat folder"):
        prepare_so2sat_store(v2, v2 / "store", progress=False)
    assert not (tmp_path / "x").exists() and not (v2 / "store").exists()


def test_cli_so2sat_and_its_usage_errors(releases, tmp_path, capsys):
    v2, v3 = releases
    main(["data", "prepare", "--so2sat", str(v3), "--variant", "random", "--out", str(tmp_path / "s")])
    assert "17 classes, no votes" in capsys.readouterr().out
    assert open_store(tmp_path / "s").manifest["so2sat_version"] == "3_random"
    for extra in (["--split", "random"], ["--raw", str(v2)], ["--aggregators", "mace"]):
        with pytest.raises(SystemExit) as e:
            main(["data", "prepare", "--so2sat", str(v2), "--out", str(tmp_path / "t"), *extra])
        assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["data", "prepare", "--out", str(tmp_path / "t")])                     # neither --raw nor --so2sat
    assert e.value.code == 2 and not (tmp_path / "t").exists()


def test_labels_are_read_in_blocks(tmp_path, monkeypatch):
    from lczldl.data.readers import so2sat

    paths = write_so2sat(tmp_path / "v3", "3_block", {"train": 2, "test": 1}, seed=3, sen1=False)
    monkeypatch.setattr(so2sat, "LABEL_BLOCK", 5)
    f = so2sat.open_so2sat(paths["train"])
    np.testing.assert_array_equal(f.label, np.nonzero(_h5(paths["train"], "label"))[1])
    with h5py.File(paths["train"], "r+") as h:
        h["label"][23, :] = 0                                              # the fifth block's fourth row
    with pytest.raises(DataError, match="not one-hot \\(first bad row 23\\)"):
        so2sat.open_so2sat(paths["train"])


def test_inspect_says_a_store_without_votes_has_no_vote_statistics(v2_store):
    from lczldl.data.stats import inspect_path

    with pytest.raises(DataError, match="has no expert votes .* class counts are in manifest.json"):
        inspect_path(v2_store)
