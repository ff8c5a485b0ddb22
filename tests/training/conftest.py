"""A tiny prepared store written directly in the documented npy layout (docs/architecture.md),
and a tiny model/train config, so training tests run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lczldl.config import LczldlConfig, load_config
from lczldl.constants import BANDS, N_URBAN

#: fast overrides: the smallest Sen2LCZ (depth 5, width 2), few epochs
TINY = ["model.depth=5", "model.width=2", "train.batch_size=16", "train.num_threads=1"]


def run_config(overrides: list[str], regime: str | None = None, max_epochs: int | None = None) -> LczldlConfig:
    """The resolved config of a test run: defaults <- ``overrides`` <- the regime and epoch cap
    (None = keep), resolved once as ``lczldl train`` does before calling ``train_run``."""
    return load_config(None, list(overrides), **{"train.regime": regime, "train.max_epochs": max_epochs})


def write_tiny_store(root: Path, n: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Store with class-dependent band means (learnable), random votes -> distributions."""
    n = n or {"train": 96, "val": 40, "test": 24}
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    centers = rng.uniform(0.05, 0.4, size=(N_URBAN, len(BANDS)))
    splits = {}
    for split, m in n.items():
        d = root / split
        d.mkdir()
        label = rng.integers(0, N_URBAN, size=m).astype(np.int64)
        img = centers[label][:, :, None, None] + rng.normal(0, 0.05, size=(m, len(BANDS), 32, 32))
        np.save(d / "image.npy", np.clip(np.round(img * 10000), 0, 65535).astype(np.uint16))
        votes = np.zeros((m, 11), np.int8)
        for i in range(m):
            k = rng.integers(1, 11)
            other = rng.integers(0, N_URBAN, size=k)
            v = np.where(rng.random(k) < 0.7, label[i], other) + 1
            votes[i, :k] = v
        counts = np.stack([(votes == c + 1).sum(1) for c in range(N_URBAN)], 1).astype(np.float32)
        counts[np.arange(m), label] += 0.5  # majority == label
        dist = (counts / counts.sum(1, keepdims=True)).astype(np.float32)
        ds = (0.8 * dist + 0.2 * np.eye(N_URBAN, dtype=np.float32)[label]).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -(np.where(dist > 0, dist * np.log(dist), 0)).sum(1).astype(np.float32)
        np.save(d / "label.npy", label)
        np.save(d / "distribution.npy", dist)
        np.save(d / "dawid_skene.npy", ds / ds.sum(1, keepdims=True))
        np.save(d / "votes.npy", votes)
        np.save(d / "original.npy", (label + 1).astype(np.int8))
        np.save(d / "city.npy", np.zeros(m, np.int16))
        np.save(d / "vote_entropy.npy", ent)
        splits[split] = {"n": m, "class_counts": np.bincount(label, minlength=N_URBAN).tolist(),
                         "entropy_bins": [0] * 6, "cities": {"testville": m}}
    manifest = {"format": "lczldl-store", "version": 1, "package_version": "test", "created": "test",
                "splits": splits, "dropped": {}, "cities": ["testville"], "bands": list(BANDS),
                "band_mean": centers.mean(0).tolist(), "band_std": [0.1] * len(BANDS),
                "entropy_bin_edges": [-0.1, 0.2, 0.5, 0.7, 1.0, 1.3, None], "sources": {},
                "config": {"split": "test", "seed": seed}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    return write_tiny_store(tmp_path_factory.mktemp("store") / "store")
