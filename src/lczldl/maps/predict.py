"""Sliding-window LCZ maps with uncertainty from a Sentinel-2 scene.

The scene is read in horizontal blocks of output rows (never whole), windows are cut with a
strided view, pushed through one or more models (ensemble; optional MC dropout; optional
temperature), and each finished block is saved atomically under ``OUT/.partial/``. A killed run
restarts at the first missing block. When every block is there the GeoTIFFs are assembled under
temporary names and renamed into place, so the final names only ever hold complete files.

Outputs (all on the output grid of :func:`lczldl.maps.scene.output_grid`, the scene's CRS):
- ``lcz.tif``          uint8, LCZ id 1..K of the argmax, nodata 0 (window touching nodata)
- ``probability.tif``  float32, one band per class (LCZ 1..K), nodata NaN
- ``entropy.tif``      float32, predictive entropy in nats, nodata NaN
- ``confidence.tif``   float32, max class probability, nodata NaN
- ``preview.png``      LCZ map in the standard colours with legend, beside the entropy map
- ``predict.json``     provenance (inputs, checksums, settings, versions, timing)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from lczldl.constants import PATCH_SIZE
from lczldl.distributions import entropy_nats
from lczldl.errors import RunError, SceneError
from lczldl.evaluation.predictor import Predictor
from lczldl.fileio import atomic_write_json, file_sha256
from lczldl.maps.scene import OutputGrid, SceneInfo, detect_scale, open_scene, output_grid, read_rows

PARTIAL = ".partial"
OUTPUT_NAMES = ("lcz.tif", "probability.tif", "entropy.tif", "confidence.tif", "preview.png",
                "predict.json")


def resolve_temperature(checkpoint: Path, temperature: str | float) -> float:
    """Temperature for one checkpoint: a number, or ``auto`` = the run's metrics_ts.json.

    A run's best checkpoint lives in RUN/checkpoints/; its temperature in RUN/metrics_ts.json.
    """
    if str(temperature).lower() != "auto":
        try:
            value = float(temperature)
        except ValueError:
            raise SceneError(f"--temperature must be 'auto' or a positive number, got {temperature!r}") from None
        if not np.isfinite(value) or value <= 0:
            raise SceneError(f"--temperature must be positive, got {temperature!r}")
        return value
    checkpoint = Path(checkpoint)
    for run_dir in (checkpoint.parent.parent, checkpoint.parent):
        ts = run_dir / "metrics_ts.json"
        if ts.exists():
            value = json.loads(ts.read_text()).get("temperature")
            if value is not None:
                return float(value)
    raise RunError(f"{checkpoint}: no metrics_ts.json with a temperature beside this checkpoint's run; "
                   "run `lczldl evaluate` on it or pass --temperature with a number")


def window_patches(pixels: np.ndarray, invalid: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut every window of a block.

    pixels (C, R, W) float32, invalid (R, W) bool -> (patches (n_r, n_c, C, 32, 32) view,
    window_invalid (n_r, n_c) bool: the window holds at least one invalid pixel).
    """
    views = sliding_window_view(pixels, (PATCH_SIZE, PATCH_SIZE), axis=(1, 2))[:, ::stride, ::stride]
    patches = views.transpose(1, 2, 0, 3, 4)
    # any-invalid per window via a 2-D prefix sum (O(R*W), not O(windows * 1024))
    csum = np.zeros((invalid.shape[0] + 1, invalid.shape[1] + 1), dtype=np.int32)
    csum[1:, 1:] = invalid.astype(np.int32).cumsum(0).cumsum(1)
    n_r, n_c = patches.shape[:2]
    r0 = np.arange(n_r) * stride
    c0 = np.arange(n_c) * stride
    r1, c1 = r0 + PATCH_SIZE, c0 + PATCH_SIZE
    counts = (csum[r1][:, c1] - csum[r0][:, c1] - csum[r1][:, c0] + csum[r0][:, c0])
    return patches, counts > 0


class MapPredictor:
    """Fused probabilities of an ensemble of models, optionally with MC dropout and temperature.

    Each member's probabilities are softmax(log_probs / T_m); members (and MC passes) are averaged
    in probability space. With MC dropout, torch's RNG is seeded from (``seed``, the call's
    ``key``) inside each call and restored afterwards, so a map (and a resumed map) is reproducible.
    """

    def __init__(self, models: Sequence[torch.nn.Module], temperatures: Sequence[float],
                 mc_passes: int = 0, batch_size: int = 256, seed: int = 0) -> None:
        self.models = list(models)
        self.temperatures = [float(t) for t in temperatures]
        self.mc_passes = int(mc_passes)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._predictor = Predictor(self.models, self.temperatures, mc_passes=self.mc_passes,
                                    channels_last=True)

    def __call__(self, patches: np.ndarray, key: int = 0) -> np.ndarray:
        """patches (N, C, 32, 32) float32 reflectance -> probabilities (N, K) float32; ``key``
        (e.g. the block's first row) picks the MC-dropout random stream."""
        seed = self.seed * 1_000_003 + int(key)
        out = self._predictor.predict(np.ascontiguousarray(patches), self.batch_size, seed=seed)
        return out["probs"].astype(np.float32)


def _file_fingerprint(path: Path) -> str:
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{int(st.st_mtime)}"


def _block_path(partial: Path, b: int) -> Path:
    return partial / f"block_{b:05d}.npz"


def _predict_block(info: SceneInfo, grid: OutputGrid, predictor: MapPredictor, r0: int, r1: int,
                   scale: float, offset: float, num_classes: int) -> dict[str, np.ndarray]:
    s = grid.stride
    pixels, invalid = read_rows(info.path, info, r0 * s, (r1 - 1) * s + PATCH_SIZE, scale, offset)
    patches, win_invalid = window_patches(pixels, invalid, s)
    patches = patches[:, :grid.cols]
    win_invalid = win_invalid[:, :grid.cols]
    n_r, n_c = win_invalid.shape
    probs = np.full((n_r, n_c, num_classes), np.nan, dtype=np.float32)
    valid = ~win_invalid
    if valid.any():
        probs[valid] = predictor(patches[valid], key=r0)
    return {"probs": probs, "valid": valid}


def _write_outputs(out: Path, partial: Path, info: SceneInfo, grid: OutputGrid, blocks: list[tuple[int, int]],
                   num_classes: int) -> None:
    import rasterio
    from rasterio.windows import Window

    base = dict(driver="GTiff", width=grid.cols, height=grid.rows, crs=info.crs,
                transform=grid.transform, tiled=grid.cols >= 16 and grid.rows >= 16,
                compress="deflate")
    if base["tiled"]:
        base.update(blockxsize=16 * max(1, min(grid.cols, 256) // 16),
                    blockysize=16 * max(1, min(grid.rows, 256) // 16))
    specs = {
        "lcz.tif": dict(count=1, dtype="uint8", nodata=0),
        "probability.tif": dict(count=num_classes, dtype="float32", nodata=float("nan")),
        "entropy.tif": dict(count=1, dtype="float32", nodata=float("nan")),
        "confidence.tif": dict(count=1, dtype="float32", nodata=float("nan")),
    }
    tmp = {name: out / f".{name}.tmp" for name in specs}
    dsts = {name: rasterio.open(tmp[name], "w", **base, **spec) for name, spec in specs.items()}
    has_data = False
    lcz_full = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
    ent_full = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
    try:
        for b, (r0, r1) in enumerate(blocks):
            with np.load(_block_path(partial, b)) as z:
                probs, valid = z["probs"], z["valid"]
            has_data = has_data or bool(valid.any())
            lcz, ent, conf = summarize_probs(probs, valid)
            win = Window(0, r0, grid.cols, r1 - r0)
            dsts["lcz.tif"].write(lcz, 1, window=win)
            dsts["probability.tif"].write(probs.transpose(2, 0, 1), window=win)
            dsts["entropy.tif"].write(ent, 1, window=win)
            dsts["confidence.tif"].write(conf, 1, window=win)
            lcz_full[r0:r1] = lcz
            ent_full[r0:r1] = ent
        for k in range(num_classes):
            dsts["probability.tif"].set_band_description(k + 1, f"LCZ {k + 1}")
    finally:
        for d in dsts.values():
            d.close()
    if not has_data:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise SceneError(f"{info.path}: every window holds nodata; nothing to map")
    from lczldl.maps.preview import write_preview

    write_preview(lcz_full, ent_full, out / "preview.png", num_classes=num_classes)
    for name, path in tmp.items():
        os.replace(path, out / name)


def summarize_probs(probs: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, K) probabilities -> LCZ id uint8 (0 = nodata), entropy (nats), confidence."""
    safe = np.where(valid[..., None], probs, 1.0 / probs.shape[-1])
    lcz = (safe.argmax(-1) + 1).astype(np.uint8)
    lcz[~valid] = 0
    ent = entropy_nats(safe.reshape(-1, safe.shape[-1])).reshape(safe.shape[:-1]).astype(np.float32)
    conf = safe.max(-1).astype(np.float32)
    ent[~valid] = np.nan
    conf[~valid] = np.nan
    return lcz, ent, conf


def predict_scene(checkpoints: Sequence[Path], scene: Path, out: Path, stride: int = 10, mc: int = 0,
                  temperature: str | float = "1", scale: float | None = None, offset: float = 0.0,
                  batch_size: int = 256, block_rows: int | None = None, progress: bool = True,
                  max_blocks: int | None = None) -> dict:
    """Write an LCZ map with uncertainty for ``scene`` into ``out`` (see module docstring).

    ``max_blocks`` stops after that many new blocks (used to test resuming); returns the
    provenance dict (``complete`` False when stopped early).
    """
    from lczldl import __version__
    from lczldl.models.io import load_model

    if stride <= 0:
        raise SceneError(f"--stride must be a positive number of pixels, got {stride}")
    if mc < 0:
        raise SceneError(f"--mc must be >= 0, got {mc}")
    if not checkpoints:
        raise RunError("give at least one --checkpoint")
    info = open_scene(Path(scene))
    grid = output_grid(info, stride)
    if scale is None:
        scale = detect_scale(info.path, info)
    if not scale or scale <= 0:
        raise SceneError(f"--scale must be positive, got {scale}")
    temps = [resolve_temperature(Path(c), temperature) for c in checkpoints]
    models = [load_model(Path(c)) for c in checkpoints]
    num_classes = int(models[0].model_kwargs.get("num_classes", 10)) if hasattr(models[0], "model_kwargs") else 10
    for c, m in zip(checkpoints, models, strict=True):
        k = int(getattr(m, "model_kwargs", {}).get("num_classes", num_classes))
        if k != num_classes:
            raise RunError(f"{c}: model has {k} classes, the first checkpoint has {num_classes}; "
                           "an ensemble needs the same classes")
        in_ch = int(getattr(m, "model_kwargs", {}).get("in_channels", info.count))
        if in_ch != info.count:
            raise SceneError(f"{c}: model expects {in_ch} bands, scene has {info.count}")
    predictor = MapPredictor([m.to(memory_format=torch.channels_last) for m in models], temps,
                             mc_passes=mc, batch_size=batch_size)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL
    if block_rows is None:
        block_rows = max(1, 256 // stride)
    blocks = [(r, min(r + block_rows, grid.rows)) for r in range(0, grid.rows, block_rows)]
    state = {
        "scene": _file_fingerprint(info.path),
        "checkpoints": [_file_fingerprint(Path(c)) for c in checkpoints],
        "stride": stride, "mc": mc, "temperatures": temps, "scale": scale, "offset": offset,
        "block_rows": block_rows, "rows": grid.rows, "cols": grid.cols,
    }
    state_path = partial / "state.json"
    if partial.exists():
        try:
            same = json.loads(state_path.read_text()) == json.loads(json.dumps(state))
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(partial)
    partial.mkdir(exist_ok=True)
    atomic_write_json(state_path, state)
    for name in OUTPUT_NAMES:  # a new map replaces an old one only when complete
        (out / f".{name}.tmp").unlink(missing_ok=True)

    todo = [b for b in range(len(blocks)) if not _block_path(partial, b).exists()]
    n_windows = grid.rows * grid.cols
    t0 = time.perf_counter()
    done_windows = 0
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("map"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>7.0f} windows/s"), TimeRemainingColumn()]
    new_blocks = 0
    with Progress(*columns, disable=not progress, transient=False) as bar:
        already = sum((r1 - r0) * grid.cols for b, (r0, r1) in enumerate(blocks) if b not in set(todo))
        task = bar.add_task("map", total=n_windows, rate=0.0, completed=already)
        for b in todo:
            if max_blocks is not None and new_blocks >= max_blocks:
                break
            r0, r1 = blocks[b]
            res = _predict_block(info, grid, predictor, r0, r1, scale, offset, num_classes)
            tmp = partial / f".block_{b:05d}.tmp.npz"
            np.savez(tmp, **res)
            os.replace(tmp, _block_path(partial, b))
            new_blocks += 1
            done_windows += (r1 - r0) * grid.cols
            rate = done_windows / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=(r1 - r0) * grid.cols, rate=rate)
    elapsed = time.perf_counter() - t0
    complete = all(_block_path(partial, b).exists() for b in range(len(blocks)))
    record = {
        "complete": complete, "scene": str(info.path), "scene_sha256": None,
        "checkpoints": [str(c) for c in checkpoints], "stride_px": stride,
        "pixel_size": [grid.transform.a, grid.transform.e], "crs": str(info.crs),
        "rows": grid.rows, "cols": grid.cols, "mc_passes": mc, "temperatures": temps,
        "scale": scale, "offset": offset, "windows": n_windows,
        "windows_per_second_this_call": done_windows / elapsed if elapsed > 0 else None,
        "lczldl_version": __version__, "torch_version": torch.__version__,
    }
    if not complete:
        return record
    try:
        _write_outputs(out, partial, info, grid, blocks, num_classes)
    except SceneError:
        shutil.rmtree(partial)
        raise
    record["scene_sha256"] = file_sha256(info.path) if info.path.stat().st_size < (2 << 30) else None
    record["checkpoint_sha256"] = [file_sha256(Path(c)) for c in checkpoints]
    atomic_write_json(out / "predict.json", record)
    shutil.rmtree(partial)
    return record
