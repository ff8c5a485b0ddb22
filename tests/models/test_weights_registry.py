"""The registry of named weights: entries pinned as published, downloads from a local mirror through
torch's hub helper, the sha256 check, the cache (offline use, files put there by hand), conversion
to the same probabilities as TensorFlow's (committed reference) and the CLI's list / show."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lczldl.cli.main import main as cli_main
from lczldl.errors import ModelError
from lczldl.models.io import load_model
from lczldl.models.keras_import import from_keras
from lczldl.models.weights import (
    CACHE_ENV,
    MIRROR_ENV,
    cache_dir,
    converted_path,
    download_path,
    get_weights,
    registry,
    resolve_weights,
    weights_path,
)
from lczldl.models.weights_file import read_weights_meta

from .conftest import REFERENCE

COMMIT = "c7e9a352715c9fedb891818e4611889626d4f196"
#: the published files and their sha256, as the issue and ../shared/data/README.md give them
PUBLISHED = {
    "authors-onehot": ("Sen2LCZ_bs_64_lr_0.002_seed_1234_weights_best.hdf5",
                       "e3af547d974581a961e74695ebe4cbce8d68d6085c884351dad54ae9845e7d2f", "onehot"),
    "authors-dist": ("Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5",
                     "d260fd73f46b86d22be2472c930651dc660ed97ffa334edd0e676c2b7fc00728", "dist"),
}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_entries_are_pinned_to_the_published_commit(monkeypatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert list(registry()) == ["authors-onehot", "authors-dist"]
    for name, (file, sha, regime) in PUBLISHED.items():
        w = get_weights(name)
        assert w.url() == f"https://raw.githubusercontent.com/ChrisKo94/LCZ_LDL/{COMMIT}/results/{file}"
        assert w.sha256 == sha and w.regime == regime and w.filename == file
        assert w.classes == tuple(range(1, 11))
        assert w.bands == ("S2_B02", "S2_B03", "S2_B04", "S2_B05", "S2_B06", "S2_B07", "S2_B08", "S2_B8A",
                           "S2_B11", "S2_B12")
        assert "no licence file" in w.licence and "10.1109/TGRS.2023.3336357" in w.citation
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9/base/")
    assert get_weights("authors-dist").url() == (f"http://127.0.0.1:9/base/ChrisKo94/LCZ_LDL/{COMMIT}/results/"
                                                 f"{PUBLISHED['authors-dist'][0]}")


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "lczldl"


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_download_and_conversion_give_the_keras_probabilities(name, mirror, keras_dir, tmp_path) -> None:
    path = weights_path(name, progress=False)
    assert path == converted_path(get_weights(name)) and path.is_relative_to(tmp_path / "cache")
    raw = download_path(get_weights(name))
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == PUBLISHED[name][1]
    with np.load(REFERENCE[name]) as z:
        x, probs = torch.from_numpy(z["x"]), z["probs"]
    model = load_model(path)
    np.testing.assert_allclose(model.predict_proba(x).numpy(), probs, atol=1e-4, rtol=0)   # TensorFlow's
    direct = from_keras(keras_dir / PUBLISHED[name][0]).predict_proba(x).numpy()
    np.testing.assert_array_equal(model.predict_proba(x).numpy(), direct)                   # the Keras import
    meta = read_weights_meta(path)
    assert meta["name"] == name and meta["classes"] == list(range(1, 11)) and meta["regime"] == PUBLISHED[name][2]
    assert meta["source"]["sha256"] == PUBLISHED[name][1] and meta["weights_sha256"] == PUBLISHED[name][1]
    assert meta["scaling"]["dn_divisor"] == 10000.0 and meta["temperature"] is None
    assert "no licence file" in meta["licence"]


def test_cache_is_used_offline_and_a_file_put_by_hand_is_taken(mirror, keras_dir) -> None:
    path = weights_path("authors-onehot", progress=False)
    before = path.stat().st_mtime_ns
    mirror.stop()
    assert weights_path("authors-onehot", progress=False) == path and path.stat().st_mtime_ns == before
    path.unlink()                                   # converted again from the download, no network
    assert weights_path("authors-onehot", progress=False) == path
    w = get_weights("authors-dist")                 # never downloaded: put it there by hand
    download_path(w).write_bytes((keras_dir / w.filename).read_bytes())
    assert read_weights_meta(weights_path("authors-dist", progress=False))["regime"] == "dist"


def test_wrong_sha256_is_refused_and_nothing_is_cached(mirror, keras_dir, tmp_path) -> None:
    mirror.put("authors-dist", keras_dir / PUBLISHED["authors-onehot"][0])   # the other file's bytes
    with pytest.raises(ModelError) as err:
        weights_path("authors-dist", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "sha256" in msg and PUBLISHED["authors-dist"][1] in msg
    assert PUBLISHED["authors-onehot"][1] in msg                           # what came instead
    assert not (tmp_path / "cache").exists()


def test_a_wrong_file_put_by_hand_is_refused(mirror, keras_dir) -> None:
    mirror.stop()
    w = get_weights("authors-dist")
    download_path(w).parent.mkdir(parents=True)
    shutil.copyfile(keras_dir / PUBLISHED["authors-onehot"][0], download_path(w))
    with pytest.raises(ModelError) as err:
        weights_path("authors-dist", progress=False)
    assert str(download_path(w)) in str(err.value) and "\n" not in str(err.value)
    assert not converted_path(w).exists()


def test_offline_with_an_empty_cache_says_where_to_put_the_file(mirror, tmp_path, capsys) -> None:
    mirror.stop()                                   # nothing listens on the mirror's port any more
    w = get_weights("authors-dist")
    with pytest.raises(ModelError) as err:
        weights_path("authors-dist", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and w.url() in msg and w.url().startswith(mirror.base)
    assert str(download_path(w)) in msg and w.sha256 in msg
    assert not (tmp_path / "cache").exists()
    with pytest.raises(SystemExit) as exit_:        # the CLI: one line, exit 2
        cli_main(["predict", "--weights", "authors-dist", "--scene", str(tmp_path / "s.tif"),
                  "--out", str(tmp_path / "map")])
    assert exit_.value.code == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and w.url() in err_lines[0]
    assert not (tmp_path / "map").exists() and not (tmp_path / "cache").exists()


def test_unknown_names_list_the_registry(tmp_path) -> None:
    with pytest.raises(ModelError) as err:
        resolve_weights("authors-bogus")
    assert "authors-onehot" in str(err.value) and "authors-dist" in str(err.value)
    (tmp_path / "w.safetensors").write_bytes(b"x")
    assert resolve_weights(tmp_path / "w.safetensors") == tmp_path / "w.safetensors"   # a file is itself


def test_cli_list_and_show(mirror, capsys) -> None:
    cli_main(["weights", "list"])
    out = capsys.readouterr().out
    for name, (file, sha, _) in PUBLISHED.items():
        line = next(x for x in out.splitlines() if x.startswith(name))
        assert sha[:12] in line and "not downloaded" in line
        assert f"{mirror.base}/ChrisKo94/LCZ_LDL/{COMMIT}/results/{file}" in out
    weights_path("authors-dist", progress=False)
    cli_main(["weights", "list"])
    assert "cached" in next(x for x in capsys.readouterr().out.splitlines() if x.startswith("authors-dist"))
    cli_main(["weights", "show", "authors-dist"])
    shown = dict(x.split(": ", 1) for x in capsys.readouterr().out.splitlines())
    assert shown["registry"] == "authors-dist" and shown["regime"] == "dist"
    assert shown["classes"] == "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" and "no licence file" in shown["licence"]
    assert shown["cached"] == str(converted_path(get_weights("authors-dist")))
