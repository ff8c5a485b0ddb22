"""The published Keras checkpoints: imported probabilities equal TensorFlow's (committed reference).

tests/resources/keras_reference_*.npz were computed by TensorFlow/Keras with
scripts/make_keras_reference.py; these tests need no TensorFlow.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lczldl.cli.main import main as cli_main
from lczldl.errors import ModelError
from lczldl.models.io import load_model, read_model_meta
from lczldl.models.keras_import import from_keras

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "tests" / "resources"
FILES = {
    "onehot": "Sen2LCZ_bs_64_lr_0.002_seed_1234_weights_best.hdf5",
    "dist": "Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5",
}


@pytest.fixture
def keras_dir(shared_file) -> Path:
    """The published Keras weights, ../shared/data/lcz_ldl_keras (skip or fail per the shared rule)."""
    return shared_file("data/lcz_ldl_keras")


def _ref(tag: str) -> dict[str, np.ndarray]:
    with np.load(RESOURCES / f"keras_reference_{tag}.npz") as z:
        return {k: z[k] for k in z.files}


def test_reference_files_are_small_and_consistent() -> None:
    for tag, fname in FILES.items():
        assert (RESOURCES / f"keras_reference_{tag}.npz").stat().st_size < 200_000
        r = _ref(tag)
        assert r["x"].dtype == np.float32 and r["x"].shape[1:] == (10, 32, 32)
        assert str(r["weights_file"]) == fname
        np.testing.assert_allclose(r["probs"].sum(1), 1.0, atol=1e-5)
        np.testing.assert_allclose(r["head_probs"].mean(1), r["probs"], atol=1e-6)


@pytest.mark.parametrize("tag", list(FILES))
def test_from_keras_equals_tensorflow(tag: str, keras_dir: Path) -> None:
    r = _ref(tag)
    path = keras_dir / FILES[tag]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == str(r["weights_sha256"])
    model = from_keras(path)
    assert not model.training
    assert model.model_kwargs["num_classes"] == 10 and model.model_kwargs["in_channels"] == 10
    assert model.meta["weights_sha256"] == str(r["weights_sha256"])
    x = torch.from_numpy(r["x"])
    np.testing.assert_allclose(model.predict_proba(x).numpy(), r["probs"], atol=1e-4, rtol=0)
    with torch.no_grad():
        heads = torch.softmax(model.head_logits(x), -1).numpy()
    np.testing.assert_allclose(heads, r["head_probs"], atol=1e-4, rtol=0)
    # BN folded into the convs: same probabilities
    np.testing.assert_allclose(model.inference_copy().predict_proba(x).numpy(), r["probs"], atol=1e-4, rtol=0)


def test_the_two_checkpoints_differ() -> None:
    """Guards against a reference that does not depend on the weights."""
    a, b = _ref("onehot"), _ref("dist")
    np.testing.assert_array_equal(a["x"], b["x"])
    assert np.abs(a["probs"] - b["probs"]).max() > 0.05


def test_cli_import_keras_then_load_model(tmp_path: Path, keras_dir: Path) -> None:
    r = _ref("dist")
    out = tmp_path / "dist.pt"
    cli_main(["import-keras", str(keras_dir / FILES["dist"]), "--out", str(out)])  # returns on success
    model = load_model(out)
    np.testing.assert_allclose(model.predict_proba(torch.from_numpy(r["x"])).numpy(), r["probs"], atol=1e-4)
    assert read_model_meta(out)["weights_sha256"] == str(r["weights_sha256"])


def test_cli_import_keras_bad_file_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.hdf5"
    bad.write_text("hello")
    with pytest.raises(SystemExit) as exit_:
        cli_main(["import-keras", str(bad), "--out", str(tmp_path / "x.pt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "bad.hdf5" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_not_a_keras_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("sen2", data=np.zeros((2, 32, 32, 10), np.float32))
    for name in ["text.hdf5", "empty.h5", "missing.h5"]:
        with pytest.raises(ModelError) as err:
            from_keras(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_damaged_keras_checkpoints(tmp_path: Path, keras_dir: Path) -> None:
    src = keras_dir / FILES["onehot"]
    no_head = tmp_path / "no_head.hdf5"
    shutil.copy(src, no_head)
    no_head.chmod(0o644)
    with h5py.File(no_head, "r+") as f:
        del f["dense_3"]
    wrong_shape = tmp_path / "wrong_shape.hdf5"
    shutil.copy(src, wrong_shape)
    wrong_shape.chmod(0o644)
    with h5py.File(wrong_shape, "r+") as f:
        g = f["batch_normalization_5"]["batch_normalization_5"]
        del g["gamma:0"]
        g.create_dataset("gamma:0", data=np.ones(7, np.float32))
    for path in (no_head, wrong_shape):
        with pytest.raises(ModelError) as err:
            from_keras(path)
        assert path.name in str(err.value)
