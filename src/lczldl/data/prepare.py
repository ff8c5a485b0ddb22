"""``lczldl data prepare``: raw vote files -> the prepared store (layout in docs/architecture.md).

- Pixels are streamed city by city in chunks of ``CHUNK`` rows (peak memory is bounded by a chunk,
  whatever the size of the release) and written sequentially, channels-first, as
  uint16 = round(reflectance * 10000), the Sentinel-2 quantisation itself: So2Sat values
  (DN / 10000) round-trip exactly; values outside [0, 6.5535] are clipped and counted.
- Each city file is read once while writing (its rows go to whichever splits hold them); with
  ``drop_nonfinite=True`` a first pass finds rows with NaN/inf pixels so they can be dropped
  before the split. Without it, a non-finite pixel is an error naming the file and the row count.
- Row order inside a split: cities in ``constants.ALL_CITIES`` order, rows in file order. Besides
  the arrays of docs/architecture.md, ``{split}/row.npy`` (N,) int32 holds each row's index in
  its city's raw file (with ``city.npy`` it maps a sample back to its source, e.g. ``img_coord``).
- Dawid-Skene posteriors are fitted by EM on the votes of all kept rows of all splits (label
  aggregation uses votes only, never images or test labels; as in crowdsourcing); recorded in the
  manifest's ``config``.
- Everything is written into ``OUT.tmp-<pid>-XXXX`` beside ``OUT`` and renamed into place at the
  end; on any error the temp folder is removed and ``OUT`` is left as it was. A rerun with the same
  sources (sha256) and settings is a no-op.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lczldl.constants import ALL_CITIES, BANDS, N_URBAN, PATCH_SIZE
from lczldl.distributions import ENTROPY_BIN_EDGES, entropy_histogram
from lczldl.errors import DataError

STORE_FORMAT = "lczldl-store"
STORE_VERSION = 1
CHUNK = 1024
SCALE = 10000.0
SPLIT_NAMES = ("train", "val", "test")
IMAGE_SHAPE = (len(BANDS), PATCH_SIZE, PATCH_SIZE)
DROP_NONFINITE = "nonfinite_pixels"
DS_NOTE = "Dawid-Skene EM fitted on the votes of all kept rows of all splits (votes only, no images)"


def is_prepared_store(path: Path) -> bool:
    """True if ``path`` holds a manifest.json of an lczldl store."""
    m = Path(path) / "manifest.json"
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text()).get("format") == STORE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def is_raw_vote_folder(path: Path) -> bool:
    """True if ``path`` is a folder holding ``{city}.h5`` / ``{city}_addon.h5`` files of known cities."""
    path = Path(path)
    if not path.is_dir():
        return False
    for p in path.glob("*.h5"):
        stem = p.stem[:-len("_addon")] if p.stem.endswith("_addon") else p.stem
        if stem in ALL_CITIES:
            return True
    return False


def to_uint16(px: np.ndarray) -> tuple[np.ndarray, int]:
    """(n, 32, 32, 10) reflectance -> ((n, 10, 32, 32) uint16 = round(x * 10000), clipped count)."""
    scaled = np.rint(np.asarray(px, dtype=np.float32).transpose(0, 3, 1, 2) * np.float32(SCALE))
    clipped = int(np.count_nonzero((scaled < 0) | (scaled > 65535)))
    return np.clip(scaled, 0, 65535).astype(np.uint16), clipped


def write_npy_header(fh, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Write a .npy (v1.0) header for a C-order array; the data follows sequentially."""
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
             "shape": tuple(int(s) for s in shape)})


def _config(split, seed, train_cities, val_cities, test_cities, smoothing, drop_nonfinite) -> dict:
    return {"split": split, "seed": int(seed),
            "train_cities": list(train_cities) if train_cities else None,
            "val_cities": list(val_cities) if val_cities else None,
            "test_cities": list(test_cities) if test_cities else None,
            "smoothing": float(smoothing), "drop_nonfinite": bool(drop_nonfinite),
            "dawid_skene": DS_NOTE, "chunk_rows": CHUNK}


def _same_store(out: Path, sources: dict, config: dict) -> dict | None:
    """The existing manifest of ``out`` if it was prepared from the same sources and settings."""
    if not is_prepared_store(out):
        return None
    old = json.loads((out / "manifest.json").read_text())
    if old.get("version") != STORE_VERSION or old.get("sources") != sources or old.get("config") != config:
        return None
    try:
        from lczldl.data.store import open_store

        store = open_store(out)
        for s in SPLIT_NAMES:
            store.split(s)
    except DataError:
        return None
    return old


def _remove_stale_temps(out: Path) -> None:
    """Remove temp folders of earlier prepare runs on ``out`` whose process is gone."""
    for p in out.parent.glob(f"{out.name}.tmp-*"):
        try:
            pid = int(p.name[len(out.name) + len(".tmp-"):].split("-")[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def _check_paths(raw: Path, out: Path) -> None:
    if is_prepared_store(raw):
        raise DataError(f"{raw}: this is already a prepared store; pass it as --data to train/study, "
                        "or give --raw a folder of raw vote files")
    r, o = raw.resolve(), out.resolve()
    if o == r or r in o.parents or o in r.parents:
        raise DataError(f"--out {out}: must not be, contain or lie inside the raw folder {raw}; "
                        "choose a separate folder")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not is_prepared_store(out):
        raise DataError(f"--out {out}: exists, is not empty and is not a prepared store; "
                        "choose a new or empty folder (it would be replaced)")


def prepare_store(raw: Path, out: Path, *, split: str = "authors", seed: int = 42,
                  train_cities: list[str] | None = None, val_cities: list[str] | None = None,
                  test_cities: list[str] | None = None, smoothing: float = 0.0,
                  drop_nonfinite: bool = False, progress: bool = True) -> dict:
    """Prepare the raw vote files in ``raw`` into the store ``out``; returns the manifest.

    ``split``: authors | random | cities (with the three city lists); ``seed`` seeds the random
    parts of the split; ``smoothing`` a of the stored distribution (c + a) / (n (1 + a)) (0 = raw
    vote shares); ``drop_nonfinite`` drops rows with NaN/inf pixels instead of failing.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lczldl import __version__
    from lczldl.data.dawid_skene import fit_dawid_skene
    from lczldl.data.labels import build_labels
    from lczldl.data.readers.votes import find_city_files, nonfinite_rows, open_city
    from lczldl.data.splits import make_split

    raw, out = Path(raw), Path(out)
    if not np.isfinite(smoothing) or smoothing < 0:
        raise DataError(f"--smoothing must be a finite number >= 0, got {smoothing}")
    _check_paths(raw, out)
    files = find_city_files(raw)
    cities = {c: open_city(p) for c, p in files.items()}
    city_names = [c for c in ALL_CITIES if c in cities]
    sources = {files[c].name: cities[c].sha256() for c in city_names}
    config = _config(split, seed, train_cities, val_cities, test_cities, smoothing, drop_nonfinite)
    old = _same_store(out, sources, config)
    if old is not None:
        return old

    def bar() -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=not progress, transient=True)

    # labels (votes only), optional non-finite scan, Dawid-Skene, split
    labels, bad_rows = {}, {}
    dropped: dict[str, int] = {}
    dropped_by_city: dict[str, dict[str, int]] = {}
    for c in city_names:
        cf = cities[c]
        lab = build_labels(cf.votes, cf.original, smoothing=smoothing, where=str(cf.path))
        labels[c] = lab
        dropped_by_city[c] = dict(lab.dropped)
        dropped_by_city[c].setdefault(DROP_NONFINITE, 0)
    if drop_nonfinite:
        with bar() as pb:
            task = pb.add_task("scanning pixels", total=sum(cities[c].n for c in city_names))
            for c in city_names:
                cf, bad = cities[c], np.zeros(cities[c].n, dtype=bool)
                for a in range(0, cf.n, CHUNK):
                    b = min(a + CHUNK, cf.n)
                    bad[a:b] = nonfinite_rows(cf.read_sen2(a, b))
                    pb.advance(task, b - a)
                dropped_by_city[c][DROP_NONFINITE] = int((bad & labels[c].keep).sum())
                labels[c].keep = labels[c].keep & ~bad
                bad_rows[c] = bad
    for per_city in dropped_by_city.values():
        for k, v in per_city.items():
            dropped[k] = dropped.get(k, 0) + int(v)
    kept = {c: np.nonzero(labels[c].keep)[0] for c in city_names}
    parts = make_split(split, {c: labels[c].label[kept[c]] for c in city_names}, seed=seed,
                       train_cities=train_cities, val_cities=val_cities, test_cities=test_cities,
                       city_keep={c: labels[c].keep for c in city_names})  # authors: draw over all rows
    order = {c: i for i, c in enumerate(city_names)}
    parts = {s: sorted(((c, np.sort(np.asarray(r, dtype=np.int64))) for c, r in parts[s] if len(r)),
                       key=lambda cr: order[cr[0]]) for s in SPLIT_NAMES}
    all_votes = np.concatenate([labels[c].votes[kept[c]] for c in city_names])
    ds = fit_dawid_skene(all_votes, N_URBAN)
    ds_post, offset = {}, 0
    for c in city_names:
        ds_post[c] = ds.posteriors[offset:offset + len(kept[c])].astype(np.float32)
        offset += len(kept[c])

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)                     # mkdtemp makes it 0700
    handles: dict[str, object] = {}
    try:
        n_split = {s: int(sum(len(r) for _, r in parts[s])) for s in SPLIT_NAMES}
        for s in SPLIT_NAMES:
            (tmp / s).mkdir()
            handles[s] = open(tmp / s / "image.npy", "wb")
            write_npy_header(handles[s], (n_split[s],) + IMAGE_SHAPE, np.uint16)
        # file row -> split for every city, then one streaming pass per city
        clipped = dict.fromkeys(SPLIT_NAMES, 0)
        written = dict.fromkeys(SPLIT_NAMES, 0)
        band_sum, band_sq, band_n = np.zeros(len(BANDS)), np.zeros(len(BANDS)), 0
        with bar() as pb:
            task = pb.add_task("writing store", total=sum(cities[c].n for c in city_names))
            for c in city_names:
                cf = cities[c]
                dest = np.full(cf.n, -1, dtype=np.int64)
                for s_i, s in enumerate(SPLIT_NAMES):
                    for cc, rows in parts[s]:
                        if cc == c:
                            dest[kept[c][rows]] = s_i
                n_bad = 0
                for a in range(0, cf.n, CHUNK):
                    b = min(a + CHUNK, cf.n)
                    px = cf.read_sen2(a, b)
                    if not drop_nonfinite:
                        n_bad += int(nonfinite_rows(px).sum())
                    pb.advance(task, b - a)
                    if n_bad:
                        continue                       # keep scanning only to count the bad rows
                    d = dest[a:b]
                    for s_i, s in enumerate(SPLIT_NAMES):
                        sel = np.nonzero(d == s_i)[0]
                        if not sel.size:
                            continue
                        img, n_clip = to_uint16(px[sel])
                        clipped[s] += n_clip
                        handles[s].write(img.tobytes())
                        written[s] += len(sel)
                        if s == "train":
                            refl = img.astype(np.float64) / SCALE
                            band_sum += refl.sum(axis=(0, 2, 3))
                            band_sq += np.square(refl).sum(axis=(0, 2, 3))
                            band_n += refl.shape[0] * PATCH_SIZE * PATCH_SIZE
                if n_bad:
                    raise DataError(f"{cf.path}: 'sen2' has non-finite pixels (NaN/inf) in {n_bad} of "
                                    f"{cf.n} rows; pass --drop-nonfinite to drop those rows")
        for s in SPLIT_NAMES:
            handles[s].close()
            if written[s] != n_split[s]:  # pragma: no cover - internal consistency
                raise DataError(f"{tmp / s / 'image.npy'}: wrote {written[s]} rows, expected {n_split[s]}")

        manifest_splits = {}
        for s in SPLIT_NAMES:
            cols = {k: [] for k in ("label", "distribution", "dawid_skene", "votes", "original", "city",
                                    "vote_entropy", "row")}
            for c, rows in parts[s]:
                lab, file_rows = labels[c], kept[c][rows]
                cols["label"].append(lab.label[file_rows].astype(np.int64))
                cols["distribution"].append(lab.distribution[file_rows].astype(np.float32))
                cols["dawid_skene"].append(ds_post[c][rows])
                cols["votes"].append(lab.votes[file_rows].astype(np.int8))
                cols["original"].append(lab.original[file_rows].astype(np.int8))
                cols["city"].append(np.full(len(rows), order[c], dtype=np.int16))
                cols["vote_entropy"].append(lab.entropy[file_rows].astype(np.float32))
                cols["row"].append(file_rows.astype(np.int32))
            arrays = {k: np.concatenate(v) for k, v in cols.items()}
            for k, v in arrays.items():
                np.save(tmp / s / f"{k}.npy", v)
            ent_counts = entropy_histogram(arrays["vote_entropy"]).tolist()
            n = n_split[s]
            manifest_splits[s] = {
                "n": n,
                "class_counts": np.bincount(arrays["label"], minlength=N_URBAN).tolist(),
                "entropy_bins": ent_counts,
                "entropy_shares": [round(x / max(n, 1), 6) for x in ent_counts],
                "cities": {c: int(len(r)) for c, r in parts[s]},
                "clipped_pixel_values": clipped[s],
            }
        mean = band_sum / max(band_n, 1)
        std = np.sqrt(np.maximum(band_sq / max(band_n, 1) - mean ** 2, 0.0))
        manifest = {
            "format": STORE_FORMAT, "version": STORE_VERSION, "package_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "splits": manifest_splits, "dropped": dropped, "dropped_by_city": dropped_by_city,
            "clipped_pixel_values": int(sum(clipped.values())),
            "cities": city_names, "bands": list(BANDS),
            "pixel_encoding": "image.npy: uint16 = round(reflectance * 10000) clipped to [0, 65535], "
                              "channels-first (N, 10, 32, 32)",
            "band_mean": [round(float(x), 7) for x in mean],
            "band_std": [round(float(x), 7) for x in std],
            "entropy_bin_edges": [e if np.isfinite(e) else "inf" for e in ENTROPY_BIN_EDGES],
            "dawid_skene": {"n_iter": int(ds.n_iter), "converged": bool(ds.converged),
                            "log_likelihood": float(ds.log_likelihood), "rows": int(len(all_votes))},
            "sources": sources, "config": config,
        }
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        if out.exists():
            old_dir = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-{os.getpid()}-old-", dir=out.parent))
            os.replace(out, old_dir / "store")
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(old_dir / "store", out)       # put the old store back
                raise
            finally:
                if not (old_dir / "store").exists() or out.exists():
                    shutil.rmtree(old_dir, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        for h in handles.values():
            h.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
