"""Helpers for the data tests: write small vote / seed-split files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "tests" / "resources"


def write_h5(path: Path, **datasets) -> Path:
    """Write each keyword as a dataset (None = leave the key out)."""
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            if v is not None:
                f.create_dataset(k, data=v)
    return path


def pixels(n: int, seed: int = 0, bands: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 0.5, size=(n, 32, 32, bands)).astype(np.float32)


def city_votes(n: int, seed: int = 0, width: int = 11) -> np.ndarray:
    """Random votes, mostly urban, with a few missing votes (0)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(1, 18, size=(n, width))
    v[rng.random((n, width)) < 0.1] = 0
    return v


@pytest.fixture(scope="session")
def real_reference(shared_file) -> Path:
    """The real test-split vote distributions, ../shared/data/votes/test_label_distributions_data.h5
    (skip or fail per the shared rule of tests/conftest.py)."""
    return shared_file("data/votes/test_label_distributions_data.h5")


@pytest.fixture(scope="session")
def small_twin_raw(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """(folder, {file name: rows}) of the small synthetic twin, seed 0, written once for the data tests;
    read it, never write into it."""
    from lczldl.data.synth import synthesize

    out = tmp_path_factory.mktemp("small_twin") / "raw"
    return out, synthesize(out, seed=0, size="small", progress=False)


@pytest.fixture
def write_city(tmp_path):
    """write_city(name, votes, original=None, sen2=..., **extra) -> path of {name}.h5 in tmp_path."""

    def _write(name: str, votes: np.ndarray, original: np.ndarray | None = None, *,
               sen2: np.ndarray | None = None, folder: Path | None = None, **extra) -> Path:
        votes = np.asarray(votes)
        label = votes if original is None else np.column_stack([votes, original])
        if sen2 is None:
            sen2 = pixels(len(votes))
        return write_h5((folder or tmp_path) / f"{name}.h5", sen2=sen2, label=label, **extra)

    return _write
