"""Map prediction throughput: model inference alone vs `lczldl predict` on a stacked GeoTIFF vs the same
data as a Sentinel-2 SAFE product (lossless JPEG 2000, 20 m bands resampled while reading) and its zip;
the reading (JP2 decoding) measured on its own; peak memory of the SAFE path for growing tiles.

    python benchmarks/bench_predict.py [--size 1020] [--stride 10] [--batch 256] [--threads 2]
                                       [--repeats 2] [--memory-sizes 510,1020,2040,4080] [--memory-only]
                                       [--writer-only 1098]

The product is scripts/make_s2_products.py's synthetic L1C (processing baseline 05.09, JPEG 2000 tiles of
1024 px), the stack its digital numbers as one tiled uint16 GeoTIFF (mapped with --scale 10000 --offset
-1000); both give the same map. Cloud masking is off so that both paths predict the same windows. Each
path runs --repeats times, interleaved; the best time is reported (shared machines are noisy). Peak
memory: one child process per tile size maps the whole tile at stride 32 and reports how much its
resident memory grows while mapping (with GDAL's block cache at its default cap and at 32 MB).
``--writer-only N`` times only the writing of an N x N px map (10 classes, from chunks in memory):
the outputs, their layers (filter, COGs) and the preview, in CPU seconds (robust on a shared machine)
and wall seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from lczldl.config import MapsConfig
from lczldl.maps.grid import chunk_pixels, chunks, default_block, output_grid
from lczldl.maps.predict import MapPredictor, predict_scene
from lczldl.maps.scene import open_scene
from lczldl.models.io import save_model
from lczldl.models.sen2lcz import Sen2LCZ

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("make_s2_products", REPO / "scripts" / "make_s2_products.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inference_seconds(model: Sen2LCZ, n: int, batch: int) -> float:
    """Seconds for the model alone on n in-memory patches (the map's predictor path)."""
    pred = MapPredictor([model.to(memory_format=torch.channels_last)], [1.0], batch_size=batch)
    patches = np.random.default_rng(0).random((min(n, 4096), 10, 32, 32), dtype=np.float32) * 0.4
    pred(patches[:batch])  # warm-up
    t0, done = time.perf_counter(), 0
    while done < n:
        take = min(len(patches), n - done)
        pred(patches[:take])
        done += take
    return time.perf_counter() - t0


def _read_seconds(scene_path, stride: int, **kw) -> float:
    """Seconds to read every chunk's pixels (no model): decoding + resampling + radiometry."""
    with open_scene(scene_path, cloud_classes=(), **kw) as scene:
        grid = output_grid(scene.width, scene.height, scene.transform, stride)
        t0 = time.perf_counter()
        for chunk in chunks(grid, default_block(stride), default_block(stride)):
            row, col, h, w = chunk_pixels(grid, chunk)
            scene.read_block(Window(col, row, w, h))
        return time.perf_counter() - t0


def _decode_whole_bands(safe: Path) -> tuple[float, float]:
    """(seconds, megapixels) to decode every So2Sat band file of ``safe`` whole, once."""
    t0, px = time.perf_counter(), 0
    for path in sorted(safe.rglob("*.jp2")):
        if any(path.name.endswith(f"_{b}.jp2") for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08",
                                                            "B8A", "B11", "B12")):
            with rasterio.open(path) as src:
                px += src.read(1).size
    return time.perf_counter() - t0, px / 1e6


def _child_memory(safe: Path, stride: int, workdir: Path) -> None:
    """Map a whole tile (written by the parent); print JSON with peak RSS (MB) before and after mapping."""
    ckpt = workdir / "model.pt"
    save_model(Sen2LCZ(num_classes=10), ckpt)
    with open_scene(safe) as scene:
        size = scene.width
    before = _status_mb("VmRSS")
    try:  # reset the peak (VmHWM) to the current RSS, so the peak below is the mapping's own
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    rec = predict_scene([ckpt], safe, workdir / f"map{size}", MapsConfig(stride=stride, cloud_classes=[]),
                        progress=False)
    peak = _status_mb("VmHWM")
    print(json.dumps({"size": size, "windows": rec["windows"], "before_mb": before, "peak_mb": peak}))


def _status_mb(key: str) -> float:
    """A memory figure of /proc/self/status in MB (Linux), else the process's peak RSS."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1020, help="10 m pixels per side (multiple of 6)")
    ap.add_argument("--stride", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory-sizes", default="510,1020,2040,4080", help="tile sizes for the peak-memory table")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory table")
    ap.add_argument("--writer-only", type=int, default=None, help="only time writing an N x N px map")
    ap.add_argument("--child-memory", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_memory is not None:
        _child_memory(args.child_memory, 32, args.workdir)
        return
    if args.writer_only is not None:
        _writer_seconds(args.writer_only)
        return
    gen = _generator()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.memory_only:
            _throughput(gen, tmp, args)
        _memory_table(gen, tmp, args)


def _throughput(gen, tmp: Path, args: argparse.Namespace) -> None:
    """The windows/s table: inference alone, stacked GeoTIFF, SAFE folder, SAFE zip; reading alone."""
    safe = gen.write_product(tmp / "safe", "L1C", "05.09", size=args.size, block=1024)
    zipped = gen.write_product(tmp / "zip", "L1C", "05.09", size=args.size, block=1024, as_zip=True)
    stack = gen.write_stack(tmp / "stack.tif", "05.09", size=args.size)
    torch.manual_seed(0)
    model = Sen2LCZ(num_classes=10)
    ckpt = tmp / "model.pt"
    save_model(model, ckpt)
    n_side = (args.size - 32) // args.stride + 1
    n = n_side * n_side
    paths = {"stacked GeoTIFF (uint16, --scale/--offset)": (stack, dict(scale=10000, offset=-1000)),
             "SAFE folder (JPEG 2000)": (safe, {}), "SAFE .zip (/vsizip/)": (zipped, {})}
    best: dict[str, float] = {"model inference only": float("inf")}
    reads: dict[str, float] = {}
    for r in range(args.repeats):
        best["model inference only"] = min(best["model inference only"], _inference_seconds(model, n, args.batch))
        for name, (path, kw) in paths.items():
            t0 = time.perf_counter()
            predict_scene([ckpt], path, tmp / f"map{r}", MapsConfig(stride=args.stride, batch_size=args.batch,
                                                                  cloud_classes=[], **kw), progress=False)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
            reads[name] = min(reads.get(name, float("inf")), _read_seconds(path, args.stride, **kw))
    decode_s, mpx = _decode_whole_bands(safe)

    print(f"scene {args.size}x{args.size} px (10 m), stride {args.stride}, {n} windows, batch {args.batch}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, GDAL {rasterio.__gdal_version__}, "
          f"best of {args.repeats}")
    print("\n| path | seconds | windows/s | vs stacked GeoTIFF | reading only (s) | reading windows/s |")
    print("|---|---:|---:|---:|---:|---:|")
    ref = best["stacked GeoTIFF (uint16, --scale/--offset)"]
    for name, sec in best.items():
        rd = f"{reads[name]:.2f} | {n / reads[name]:,.0f}" if name in reads else "- | -"
        print(f"| {name} | {sec:.2f} | {n / sec:,.0f} | {ref / sec:.2f} | {rd} |")
    print(f"\nJPEG 2000 decoding of the 10 band files whole, once: {decode_s:.2f} s for {mpx:.1f} Mpx "
          f"({mpx / decode_s:.1f} Mpx/s)")


def _writer_seconds(n: int) -> None:
    """CPU and wall seconds of write_map for an n x n px map of 10 classes (12 px class blobs plus noise),
    fed from 25 x 25 chunks held in memory."""
    from affine import Affine

    from lczldl.maps.grid import OutputGrid
    from lczldl.maps.outputs import write_map

    grid = OutputGrid(rows=n, cols=n, stride=10, transform=Affine(100, 0, 600000, 0, -100, 5300040))
    rng = np.random.default_rng(0)
    logits = np.kron(rng.normal(size=(n // 12 + 1, n // 12 + 1, 10)) * 2, np.ones((12, 12, 1)))[:n, :n]
    logits += rng.normal(size=logits.shape) * 0.5
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    valid = np.ones((n, n), bool)
    blocks = [(c, p[c[0]:c[1], c[2]:c[3]], valid[c[0]:c[1], c[2]:c[3]], None) for c in chunks(grid, 25, 25)]
    with tempfile.TemporaryDirectory() as tmp:
        t0, w0 = time.process_time(), time.perf_counter()
        write_map(Path(tmp), grid, "EPSG:32632", 10, iter(blocks), {"BENCH": "1"}, "bench")
        print(f"writing a {n} x {n} px map: {time.process_time() - t0:.1f} CPU s, "
              f"{time.perf_counter() - w0:.1f} s wall")


def _memory_table(gen, tmp: Path, args: argparse.Namespace) -> None:
    """Growth of resident memory while mapping whole tiles of growing size."""
    print("\nPeak memory of mapping a whole tile (one child process each; GDAL's block cache of decoded JPEG "
          "2000 tiles at its default cap, 5 % of RAM, and capped at 32 MB):")
    print("\n| tile (px) | windows (stride 32) | RSS before mapping (MB) | mapping adds (MB) | "
          "mapping adds, GDAL_CACHEMAX=32 (MB) |")
    print("|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.memory_sizes.split(",") if s.strip()):
        product = gen.write_product(tmp / f"m{size}", "L1C", "05.09", size=size, block=1024)
        runs = [_memory_child(product, tmp, args.threads, cache) for cache in (None, "32")]
        shutil.rmtree(product)
        print(f"| {size} | {runs[0]['windows']} | {runs[0]['before_mb']:.0f} | "
              f"{runs[0]['peak_mb'] - runs[0]['before_mb']:.0f} | {runs[1]['peak_mb'] - runs[1]['before_mb']:.0f} |")


def _memory_child(product: Path, workdir: Path, threads: int, gdal_cachemax: str | None) -> dict:
    """Run :func:`_child_memory` in a fresh process (optionally with GDAL_CACHEMAX in MB)."""
    env = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    if gdal_cachemax is not None:
        env["GDAL_CACHEMAX"] = gdal_cachemax
    out = subprocess.run([sys.executable, __file__, "--child-memory", str(product), "--workdir", str(workdir),
                          "--threads", str(threads)], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
