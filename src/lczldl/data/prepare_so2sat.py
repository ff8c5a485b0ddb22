"""Owns the So2Sat LCZ42 side of ``lczldl data prepare`` (``--so2sat``): the public release in
TorchGeo's layout (v2 and the v3 variants) -> a store without votes (docs/architecture.md,
"Prepared store"); :func:`lczldl.data.prepare.prepare_so2sat_store` checks the paths and publishes.

- Splits: v2 has training / validation / testing files; v3 (random, block, culture_10) has no
  validation file, so a seeded class-stratified share :data:`VAL_SHARE` of its training file is
  carved out as validation (:func:`lczldl.data.splits.carve_validation`, recorded in the manifest's
  ``config``). Patches of one city lie next to each other in the training file, so a carved
  validation split holds neighbours of training patches: its scores are optimistic (early stopping
  and temperature scaling see an easier split than test).
- Labels: ``label`` (N,17) one-hot -> class index 0..16 (LCZ 1-17), read in blocks.
- Pixels: only ``sen2`` is read (``sen1`` never), in blocks of ``prepare_pixels.CHUNK`` rows, by
  the same streaming pass as the vote release (:func:`lczldl.data.prepare_pixels.write_images`), so
  memory does not grow with the 52 GB file; float64 reflectance -> uint16 x 10000 (rounded).
- Per-row arrays: ``label.npy`` (N,) int64 and ``row.npy`` (N,) int64, the row in the split's
  source file (``splits[split]["source"]`` in the manifest). No vote arrays: the manifest says
  ``"votes": false`` and ``"classes"`` 1..17.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lczldl import __version__
from lczldl.config import PrepareConfig
from lczldl.constants import BANDS, N_LCZ
from lczldl.data.prepare_manifest import PIXEL_ENCODING
from lczldl.data.prepare_pixels import nonfinite_file_rows, write_images
from lczldl.data.readers.so2sat import V3_VARIANTS, So2SatFile, find_so2sat_files, open_so2sat
from lczldl.data.splits import CARVE_METHOD, carve_validation
from lczldl.errors import DataError
from lczldl.fileio import atomic_write_json, file_sha256
from lczldl.layout import SPLIT_NAMES, STORE_FORMAT, STORE_VERSION, array_path, manifest_path, split_dir

#: share of each class of a v3 training file carved out as validation
VAL_SHARE = 0.1
#: what the manifest's ``source`` says
SOURCE = "So2Sat LCZ42"
#: drop reason of rows with non-finite pixels (with ``drop_nonfinite``)
DROP_NONFINITE = "nonfinite_pixels"


@dataclass
class So2SatPlan:
    """What prepare writes: ``files`` source key (path relative to the given folder) -> opened file,
    in train, val, test order; ``rows[split]`` = (source key, sorted row indices into that file)."""

    version: str
    files: dict[str, So2SatFile]
    rows: dict[str, tuple[str, np.ndarray]]
    sources: dict[str, str]
    config: dict[str, Any]
    dropped: dict[str, int] = field(default_factory=dict)

    def n(self, split: str) -> int:
        return int(len(self.rows[split][1]))

    def destinations(self) -> dict[str, np.ndarray]:
        """source key -> (n_file,) int64 index into SPLIT_NAMES of each file row, -1 where dropped."""
        dest = {k: np.full(f.n, -1, dtype=np.int64) for k, f in self.files.items()}
        for s_i, s in enumerate(SPLIT_NAMES):
            key, rows = self.rows[s]
            dest[key][rows] = s_i
        return dest


def so2sat_version(root: Path, variant: str | None, files: dict[str, Path]) -> str:
    """TorchGeo's version name of the release found in ``root``: "2" with a validation file, else
    "3_<variant>" (the given variant, or the folder's own name), "3" when the variant is unknown."""
    if "val" in files:
        return "2"
    name = variant or Path(root).name
    return f"3_{name}" if name in V3_VARIANTS else "3"


def open_so2sat_sources(root: Path, variant: str | None) -> tuple[str, dict[str, So2SatFile], dict[str, str]]:
    """(version, source key -> validated file in train, val, test order, source key -> sha256)."""
    root = Path(root)
    paths = find_so2sat_files(root, variant)
    version = so2sat_version(root, variant, paths)
    files = {str(paths[s].relative_to(root)): open_so2sat(paths[s]) for s in ("train", "val", "test") if s in paths}
    return version, files, {k: file_sha256(f.path) for k, f in files.items()}


def recorded_config(version: str, files: dict[str, So2SatFile], settings: PrepareConfig,
                    chunk_rows: int) -> dict[str, Any]:
    """The settings as the manifest records them (compared on a rerun: same -> no-op)."""
    keys = list(files)
    if len(keys) == 3:
        validation: dict[str, Any] = {"from": keys[1]}
    else:
        validation = {"from": keys[0], "share": VAL_SHARE, "seed": int(settings.seed), "method": CARVE_METHOD,
                      "note": "carved from the training file: neighbouring patches of one city lie in "
                              "both splits, so validation scores are optimistic"}
    return {"source": "so2sat", "so2sat_version": version, "validation": validation,
            "drop_nonfinite": bool(settings.drop_nonfinite), "chunk_rows": chunk_rows}


def make_so2sat_plan(version: str, files: dict[str, So2SatFile], sources: dict[str, str],
                     settings: PrepareConfig, config: dict[str, Any], progress: bool) -> So2SatPlan:
    """The rows of each split: a file per split, or (v3) validation carved from the training file;
    rows with non-finite pixels dropped first when ``settings.drop_nonfinite``."""
    keep = {k: np.ones(f.n, dtype=bool) for k, f in files.items()}
    dropped = {DROP_NONFINITE: 0}
    if settings.drop_nonfinite:
        for k, bad in nonfinite_file_rows(files, progress).items():
            keep[k] &= ~bad
            dropped[DROP_NONFINITE] += int(bad.sum())
    keys = list(files)
    kept = {k: np.nonzero(keep[k])[0] for k in keys}
    if len(keys) == 3:
        rows = {s: (k, kept[k]) for s, k in zip(SPLIT_NAMES, keys, strict=True)}
    else:
        train_key, test_key = keys
        tr = kept[train_key]
        val = tr[carve_validation(files[train_key].label[tr], VAL_SHARE, int(settings.seed))]
        rows = {"train": (train_key, np.setdiff1d(tr, val)), "val": (train_key, val), "test": (test_key, kept[test_key])}
    for s, (k, r) in rows.items():
        if not len(r):
            raise DataError(f"{files[k].path}: the {s} split would be empty; check the So2Sat files")
    return So2SatPlan(version=version, files=files, rows=rows, sources=sources, config=config, dropped=dropped)


def split_arrays(plan: So2SatPlan, split: str) -> dict[str, np.ndarray]:
    """The per-row arrays of ``split``: label (N,) int64 class index 0..16, row (N,) int64."""
    key, rows = plan.rows[split]
    return {"label": plan.files[key].label[rows].astype(np.int64), "row": rows.astype(np.int64)}


def write_so2sat_store(tmp: Path, plan: So2SatPlan, progress: bool) -> dict[str, Any]:
    """Write images, per-row arrays and the manifest of ``plan`` into the folder ``tmp``."""
    for s in SPLIT_NAMES:
        split_dir(tmp, s).mkdir()
    stats = write_images(tmp, plan.files, plan.destinations(), {s: plan.n(s) for s in SPLIT_NAMES},
                         check_finite=not plan.config["drop_nonfinite"], progress=progress)
    splits = {}
    for s in SPLIT_NAMES:
        arrays = split_arrays(plan, s)
        for k, v in arrays.items():
            np.save(array_path(tmp, s, k), v)
        splits[s] = {"n": plan.n(s), "class_counts": np.bincount(arrays["label"], minlength=N_LCZ).tolist(),
                     "source": plan.rows[s][0], "cities": {}, "clipped_pixel_values": stats.clipped[s]}
    manifest = so2sat_manifest(plan, splits, stats)
    atomic_write_json(manifest_path(tmp), manifest)
    return manifest


def so2sat_manifest(plan: So2SatPlan, splits: dict[str, dict[str, Any]], stats: Any) -> dict[str, Any]:
    """The manifest of a So2Sat store: no votes, the 17 classes (LCZ ids), per split its size,
    class counts and source file, band statistics of train, sources and settings."""
    mean, std = stats.band_mean_std()
    return {
        "format": STORE_FORMAT, "version": STORE_VERSION, "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": SOURCE, "so2sat_version": plan.version,
        "votes": False, "classes": list(range(1, N_LCZ + 1)),
        "splits": splits, "dropped": plan.dropped,
        "clipped_pixel_values": int(sum(stats.clipped.values())),
        "cities": [], "bands": list(BANDS), "pixel_encoding": PIXEL_ENCODING,
        "band_mean": [round(float(x), 7) for x in mean],
        "band_std": [round(float(x), 7) for x in std],
        "sources": plan.sources, "config": plan.config,
    }


__all__ = ["VAL_SHARE", "So2SatPlan", "make_so2sat_plan", "open_so2sat_sources", "recorded_config",
           "write_so2sat_store"]
