"""Store / LCZDataset / LCZDataModule over a tiny store prepared from hand-written raw files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lczldl.constants import BANDS
from lczldl.data.prepare import prepare_store
from lczldl.data.store import ImageFile, LCZDataset, open_store
from lczldl.errors import DataError

from .test_prepare import make_raw


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    prepare_store(make_raw(root / "raw", seed=1), root / "store", progress=False)
    return root / "store"


def test_sample_dict_shapes_dtypes_and_values(store):
    ds = LCZDataset(store, "train", target="onehot")
    raw = np.load(store / "train" / "image.npy")
    labels = np.load(store / "train" / "label.npy")
    assert len(ds) == len(raw)
    s = ds[5]
    assert set(s) == {"image", "label", "target", "index"}
    assert s["image"].shape == (10, 32, 32) and s["image"].dtype == torch.float32
    assert s["label"].dtype == torch.int64 and s["label"].ndim == 0 and int(s["label"]) == labels[5]
    assert s["target"].shape == (10,) and s["target"].dtype == torch.float32
    assert int(s["index"]) == 5
    np.testing.assert_allclose(s["image"].numpy(), raw[5] / 10000.0, rtol=1e-6)   # reflectance, no normalisation
    assert float(s["target"][labels[5]]) == 1.0 and float(s["target"].sum()) == 1.0
    assert int(ds[-1]["index"]) == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(IndexError):
        ds[[0, len(ds)]]


def test_band_selection_by_name(store):
    full = LCZDataset(store, "val")
    sub = LCZDataset(store, "val", bands=["S2_B8A", "S2_B02", "S2_B12"])
    assert sub.bands == ["S2_B8A", "S2_B02", "S2_B12"]
    x, y = full[[3, 1]]["image"], sub[[3, 1]]["image"]
    assert y.shape == (2, 3, 32, 32)
    torch.testing.assert_close(y, x[:, [BANDS.index("S2_B8A"), 0, 9]], rtol=0, atol=0)
    with pytest.raises(DataError, match="unknown band 'B4'.*S2_B02"):
        LCZDataset(store, "val", bands=["S2_B02", "B4"])


def test_batch_path_equals_per_item_path(store):
    ds = LCZDataset(store, "test", target="distribution")
    rows = np.array([7, 2, 2, 0, len(ds) - 1, 3, 4, 5, 1])             # unsorted, repeats, runs
    batch = ds[rows]
    items = [ds[int(i)] for i in rows]
    for k in ("image", "label", "target", "index"):
        torch.testing.assert_close(batch[k], torch.stack([it[k] for it in items]), rtol=0, atol=0)
    listed = ds.__getitems__(rows.tolist())
    for k in ("image", "target"):
        torch.testing.assert_close(torch.stack([it[k] for it in listed]), batch[k], rtol=0, atol=0)
    # a plain DataLoader (auto-collation through __getitems__) gives the same batch
    loader = torch.utils.data.DataLoader(ds, batch_size=len(rows), sampler=rows.tolist())
    b = next(iter(loader))
    torch.testing.assert_close(b["image"], batch["image"], rtol=0, atol=0)
    torch.testing.assert_close(b["label"], batch["label"], rtol=0, atol=0)


def test_image_file_reads_rows_in_any_order(tmp_path):
    a = np.random.default_rng(0).integers(0, 65535, (40, 3, 32, 32), dtype=np.uint16)
    np.save(tmp_path / "image.npy", a)
    f = ImageFile(tmp_path / "image.npy")
    for rows in ([3], [5, 4, 3, 3, 39, 0, 0, 1, 2], list(range(40))[::-1], [7, 7, 7], list(range(40)),
                 np.random.default_rng(1).integers(0, 40, 100)):
        np.testing.assert_array_equal(f.read(rows), a[np.asarray(rows)])
    assert f.read([]).shape == (0, 3, 32, 32)


def test_targets(store):
    label = np.load(store / "train" / "label.npy")
    dist = np.load(store / "train" / "distribution.npy")
    dsk = np.load(store / "train" / "dawid_skene.npy")
    t = {name: LCZDataset(store, "train", target=name).targets
         for name in ("onehot", "onehot_ls", "onehot_ls17", "distribution", "distribution_ls", "dawid_skene",
                      "dist")}
    i = np.arange(len(label))
    assert np.allclose(t["onehot_ls"][i, label], 0.91) and np.allclose(t["onehot_ls"].sum(1), 1)
    assert np.allclose(t["onehot_ls17"].sum(1), 0.9 + 1 / 17) and np.allclose(t["onehot_ls17"][i, label], 0.9 + 0.1 / 17)
    np.testing.assert_array_equal(t["distribution"], dist)
    np.testing.assert_array_equal(t["dist"], dist)
    np.testing.assert_allclose(t["distribution_ls"], 0.9 * dist + 0.01, atol=1e-7)
    np.testing.assert_array_equal(t["dawid_skene"], dsk)
    with pytest.raises(DataError, match="unknown target 'soft'"):
        LCZDataset(store, "train", target="soft")


@pytest.mark.parametrize("damage", ["no_manifest", "bad_json", "missing_array", "truncated_image",
                                    "row_mismatch", "no_split"])
def test_open_store_rejects_damaged_stores(store, tmp_path, damage):
    s = tmp_path / "s"
    shutil.copytree(store, s)
    if damage == "no_manifest":
        (s / "manifest.json").unlink()
    elif damage == "bad_json":
        (s / "manifest.json").write_text("{oops")
    elif damage == "missing_array":
        (s / "val" / "distribution.npy").unlink()
    elif damage == "truncated_image":
        p = s / "val" / "image.npy"
        p.write_bytes(p.read_bytes()[:-100])
    elif damage == "row_mismatch":
        lab = np.load(s / "val" / "label.npy")
        np.save(s / "val" / "label.npy", lab[:-1])
    elif damage == "no_split":
        m = json.loads((s / "manifest.json").read_text())
        del m["splits"]["val"]
        (s / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError) as err:
        open_store(s).split("val")
    assert str(s) in str(err.value) and "\n" not in str(err.value)


def test_datamodule_is_deterministic_per_seed_and_epoch(store):
    from lczldl.data.datamodule import LCZDataModule

    def epoch_indices(dm, epoch):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [b["index"].tolist() for b in loader]

    a = LCZDataModule(store, target="onehot", batch_size=16, label_smoothing=0.1, seed=3)
    b = LCZDataModule(store, target="onehot", batch_size=16, label_smoothing=0.1, seed=3)
    c = LCZDataModule(store, target="onehot", batch_size=16, label_smoothing=0.1, seed=4)
    n = a.manifest["splits"]["train"]["n"]
    e0, e1 = epoch_indices(a, 0), epoch_indices(a, 1)
    assert e0 == epoch_indices(b, 0) and e1 == epoch_indices(b, 1)
    assert e0 != e1 and e0 != epoch_indices(c, 0)
    for e in (e0, e1):
        assert sorted(sum(e, [])) == list(range(n)) and all(len(x) == 16 for x in e[:-1])
    # val: sequential, unshuffled, whole split
    assert sum((x["index"].tolist() for x in a.val_dataloader()), []) == \
        list(range(a.manifest["splits"]["val"]["n"]))


def test_datamodule_targets_bands_and_workers(store):
    from lczldl.data.datamodule import LCZDataModule

    dm = LCZDataModule(store, target="distribution_ls", eval_target="distribution", batch_size=8,
                       label_smoothing=0.1, bands=["S2_B04", "S2_B03", "S2_B02"])
    assert dm.num_classes == 10 and dm.bands == ["S2_B04", "S2_B03", "S2_B02"]
    assert dm.manifest["format"] == "lczldl-store"
    tb = next(iter(dm.train_dataloader()))
    vb = next(iter(dm.val_dataloader()))
    assert tb["image"].shape == (8, 3, 32, 32)
    assert (tb["target"] >= 0.01 - 1e-6).all()                                  # smoothed for training
    np.testing.assert_array_equal(vb["target"].numpy(), np.load(store / "val" / "distribution.npy")[:8])
    assert LCZDataModule(store, target="onehot", batch_size=8, label_smoothing=0.1).eval_target == "onehot"
    with pytest.raises(DataError):
        LCZDataModule(store, target="onehot", eval_target="nope", batch_size=8, label_smoothing=0.1)
    # a worker process (fork) reads the same batches as the main process
    dw = LCZDataModule(store, target="onehot", batch_size=8, label_smoothing=0.1, num_workers=1)
    d0 = LCZDataModule(store, target="onehot", batch_size=8, label_smoothing=0.1, num_workers=0)
    for x, y in zip(dw.test_dataloader(), d0.test_dataloader(), strict=True):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)


def test_sampler_hints_upcoming_batches_and_prefetch_is_harmless(store):
    from lczldl.data.datamodule import EpochBatchSampler

    hinted = []
    s = EpochBatchSampler(100, 10, shuffle=True, seed=1, prefetch=lambda b: hinted.append(b.tolist()),
                          prefetch_batches=3)
    it = iter(s)
    first = next(it).tolist()
    assert len(hinted) == 4                           # batches 0..2 up front, then batch 3
    rest = [b.tolist() for b in it]
    assert hinted == [first] + rest
    assert [first] + rest == [b.tolist() for b in EpochBatchSampler(100, 10, shuffle=True, seed=1)]
    ds = LCZDataset(store, "train")
    before = ds[[4, 1, 9]]["image"]
    ds.arrays.image.prefetch([9, 1, 4, 4, 10**9])
    torch.testing.assert_close(ds[[4, 1, 9]]["image"], before, rtol=0, atol=0)
