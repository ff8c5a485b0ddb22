"""Owns ``lczldl data prepare``: raw vote files (or So2Sat LCZ42, :func:`prepare_so2sat_store` and
:mod:`lczldl.data.prepare_so2sat`) -> the prepared store (layout in docs/architecture.md).

The steps, one module each: the plan from the votes (:mod:`lczldl.data.prepare_plan`: labels,
drops, split, Dawid-Skene), the pixel stream (:mod:`lczldl.data.prepare_pixels`) and the manifest
(:mod:`lczldl.data.prepare_manifest`). This module checks the paths, skips an up-to-date store and
publishes the result atomically.

- Pixels are streamed city by city in chunks (peak memory is bounded by a chunk, whatever the
  size of the release) and written sequentially, channels-first, as uint16 = round(reflectance *
  REFLECTANCE_SCALE), the Sentinel-2 quantisation itself: So2Sat values (DN / 10000) round-trip
  exactly; values outside [0, 6.5535] are clipped and counted.
- Each city file is read once while writing (its rows go to whichever splits hold them); with
  ``drop_nonfinite`` a first pass finds rows with NaN/inf pixels so they can be dropped before
  the split. Without it, a non-finite pixel is an error naming the file and the row count.
- Row order inside a split: cities in ``constants.ALL_CITIES`` order, rows in file order. Besides
  the arrays of docs/architecture.md, ``{split}/row.npy`` (N,) int64 holds each row's index in
  its city's raw file (with ``city.npy`` it maps a sample back to its source, e.g. ``img_coord``).
- Everything is written into ``OUT.tmp-<pid>-XXXX`` beside ``OUT`` and renamed into place at the
  end; on any error (a full disk included) the temp folder is removed and ``OUT`` is left as it
  was. A rerun with the same sources (sha256) and settings is a no-op.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from lczldl.config import PrepareConfig
from lczldl.constants import ALL_CITIES
from lczldl.data.prepare_manifest import build_manifest, split_summary
from lczldl.data.prepare_pixels import CHUNK, write_images
from lczldl.data.prepare_plan import make_plan, open_sources, recorded_config, split_columns
from lczldl.data.prepare_so2sat import make_so2sat_plan, open_so2sat_sources, write_so2sat_store
from lczldl.data.prepare_so2sat import recorded_config as so2sat_recorded_config
from lczldl.data.readers.votes import city_of
from lczldl.data.store import is_prepared_store, open_store
from lczldl.errors import DataError
from lczldl.fileio import atomic_folder, atomic_write_json, os_error_at
from lczldl.layout import SPLIT_NAMES, STORE_TMP_INFIX, STORE_VERSION, array_path, manifest_path, split_dir

__all__ = ["is_prepared_store", "is_raw_vote_folder", "prepare_so2sat_store", "prepare_store"]


def is_raw_vote_folder(path: Path) -> bool:
    """True if ``path`` is a folder holding ``{city}.h5`` / ``{city}_addon.h5`` files of known cities."""
    path = Path(path)
    return path.is_dir() and any(city_of(p)[0] in ALL_CITIES for p in path.glob("*.h5"))


def _same_store(out: Path, sources: dict, config: dict) -> dict | None:
    """The existing manifest of ``out`` if it was prepared from the same sources and settings."""
    if not is_prepared_store(out):
        return None
    old = json.loads(manifest_path(out).read_text())
    if old.get("version") != STORE_VERSION or old.get("sources") != sources or old.get("config") != config:
        return None
    try:
        store = open_store(out)
        for s in SPLIT_NAMES:
            store.split(s)
    except DataError:
        return None
    return old


def _remove_stale_temps(out: Path) -> None:
    """Remove temp folders of earlier prepare runs on ``out`` whose process is gone."""
    for p in out.parent.glob(f"{out.name}{STORE_TMP_INFIX}*"):
        try:
            pid = int(p.name[len(out.name) + len(STORE_TMP_INFIX):].split("-")[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def _check_paths(raw: Path, out: Path, param: str = "raw", what: str = "a folder of vote files ({city}.h5)",
                 noun: str = "raw folder") -> None:
    """DataError before anything is written when the source folder ``raw`` (the parameter ``param``)
    is a prepared store or overlaps ``out``, or ``out`` is in the way."""
    if is_prepared_store(raw):
        raise DataError(f"{param}={raw}: this is already a prepared store; pass it as data to train/study, "
                        f"or give {param} {what}", params=("data", param))
    r, o = raw.resolve(), out.resolve()
    if o == r or r in o.parents or o in r.parents:
        raise DataError(f"out={out}: must not be, contain or lie inside the {noun} {raw}; "
                        "choose a separate folder", params=("out",))
    if out.exists() and not out.is_dir():
        raise DataError(f"out={out}: exists and is not a folder; choose another path", params=("out",))
    if out.is_dir() and any(out.iterdir()) and not is_prepared_store(out):
        raise DataError(f"out={out}: exists, is not empty and is not a prepared store; "
                        "choose a new or empty folder (it would be replaced)", params=("out",))


def check_crowdkit() -> None:
    """DataError (one line, how to install it) when crowd-kit, which the aggregators need, is missing."""
    import importlib.util

    if importlib.util.find_spec("crowdkit") is None:
        raise DataError("aggregators needs crowd-kit, which is not installed; "
                        "pip install 'lcz-ldl[aggregate]' (or crowd-kit>=1.4)", params=("aggregators",))


def prepare_store(raw: Path, out: Path, settings: PrepareConfig | None = None, *,
                  progress: bool = True) -> dict:
    """Prepare the raw vote files in ``raw`` into the store ``out``; returns the manifest.

    ``settings`` (default: :class:`~lczldl.config.PrepareConfig`'s defaults): the split
    (authors | random | cities with the three city lists), the seed of its random parts, the
    smoothing a of the stored distribution (c + a) / (n (1 + a)) (0 = raw vote shares), whether
    rows with NaN/inf pixels are dropped instead of failing, and the crowd-kit aggregators whose
    posteriors are written as soft targets ``agg_<method>``.
    """
    raw, out = Path(raw), Path(out)
    settings = settings if settings is not None else PrepareConfig()
    _check_paths(raw, out)
    if settings.aggregators:
        check_crowdkit()
    cities, sources = open_sources(raw)
    config = recorded_config(settings, CHUNK)
    old = _same_store(out, sources, config)
    if old is not None:
        return old
    plan = make_plan(cities, sources, settings, config, progress)
    return _build(out, lambda tmp: _write_store(tmp, plan, progress))


def prepare_so2sat_store(root: Path, out: Path, variant: str | None = None,
                         settings: PrepareConfig | None = None, *, progress: bool = True) -> dict:
    """Prepare So2Sat LCZ42 (TorchGeo's layout: a v2 folder, a v3 variant folder, or a v3 folder
    with ``variant`` random | block | culture_10) into the store ``out`` without votes; returns the
    manifest (:mod:`lczldl.data.prepare_so2sat`). Of ``settings`` (default
    :class:`~lczldl.config.PrepareConfig`'s) only ``seed`` (the validation carved from a v3
    training file) and ``drop_nonfinite`` apply. A rerun with the same files and settings is a no-op."""
    root, out = Path(root), Path(out)
    settings = settings if settings is not None else PrepareConfig()
    _check_paths(root, out, "root", "a So2Sat LCZ42 folder (training.h5, [validation.h5,] testing.h5)",
                 "So2Sat folder")
    version, files, sources = open_so2sat_sources(root, variant)
    config = so2sat_recorded_config(version, files, settings, CHUNK)
    old = _same_store(out, sources, config)
    if old is not None:
        return old
    plan = make_so2sat_plan(version, files, sources, settings, config, progress)
    return _build(out, lambda tmp: write_so2sat_store(tmp, plan, progress))


def _build(out: Path, write) -> dict:
    """Run ``write(tmp)`` (-> the manifest) into a temp folder beside ``out`` and publish it as
    ``out``; on any error the temp folder (and folders created for ``out``) are removed."""
    new_parent = next((p for p in reversed(out.absolute().parents) if not p.exists()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    tmp = None
    try:
        with atomic_folder(out, prefix=f"{out.name}{STORE_TMP_INFIX}{os.getpid()}-") as tmp:
            manifest = write(tmp)
    except BaseException as exc:
        if new_parent is not None:                        # folders this call created for out
            shutil.rmtree(new_parent, ignore_errors=True)
        if isinstance(exc, OSError) and tmp is not None and (
                exc.filename is None or str(exc.filename).startswith(str(tmp))):
            raise os_error_at(OSError(exc.errno, exc.strerror), out) from exc  # name out, not the temp
        raise
    return manifest


def _write_store(tmp: Path, plan, progress: bool) -> dict:
    """Write images, per-row arrays and the manifest of ``plan`` into the folder ``tmp``."""
    for s in SPLIT_NAMES:
        split_dir(tmp, s).mkdir()
    n_split = {s: plan.n(s) for s in SPLIT_NAMES}
    stats = write_images(tmp, plan.cities, plan.destinations(), n_split,
                         check_finite=not plan.config["drop_nonfinite"], progress=progress)
    splits = {}
    for s in SPLIT_NAMES:
        arrays = split_columns(plan, s)
        for k, v in arrays.items():
            np.save(array_path(tmp, s, k), v)
        splits[s] = split_summary(plan, s, arrays, stats.clipped[s])
    manifest = build_manifest(plan, splits, stats)
    atomic_write_json(manifest_path(tmp), manifest)
    return manifest
