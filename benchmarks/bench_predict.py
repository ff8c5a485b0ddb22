"""Map prediction throughput vs the model's pure inference throughput.

Builds a random-reflectance scene GeoTIFF (default 1,024 x 1,024 px, 10 bands), maps it with a
randomly initialised Sen2LCZ-Net at stride 10 and compares windows/s with the same model's
inference on the same number of in-memory patches (same batch size). The goal (issue 6) is that
reading, windowing and writing cost little: mapping within 20 % of pure inference.

    python benchmarks/bench_predict.py [--size 1024] [--stride 10] [--batch 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from lczldl.maps.predict import MapPredictor, predict_scene
from lczldl.models import Sen2LCZ
from lczldl.models.io import save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = tmp / "scene.tif"
        data = (rng.random((10, args.size, args.size), dtype=np.float32) * 0.4 * 10000).astype(np.uint16)
        with rasterio.open(scene, "w", driver="GTiff", width=args.size, height=args.size, count=10,
                           dtype="uint16", crs="EPSG:32632",
                           transform=from_origin(500000, 5300000, 10, 10), tiled=True) as dst:
            dst.write(data)
        model = Sen2LCZ(num_classes=10)
        ckpt = tmp / "model.pt"
        save_model(model, ckpt)
        n_side = (args.size - 32) // args.stride + 1
        n = n_side * n_side

        # pure inference on the same number of patches, same predictor path
        pred = MapPredictor([model.to(memory_format=torch.channels_last)], [1.0], batch_size=args.batch)
        patches = rng.random((min(n, 4096), 10, 32, 32), dtype=np.float32) * 0.4
        pred(patches[: args.batch])  # warm-up
        t0 = time.perf_counter()
        done = 0
        while done < n:
            take = min(len(patches), n - done)
            pred(patches[:take])
            done += take
        t_inf = time.perf_counter() - t0

        t0 = time.perf_counter()
        predict_scene([ckpt], scene, tmp / "map", stride=args.stride, batch_size=args.batch, progress=False)
        t_map = time.perf_counter() - t0

    print(f"scene {args.size}x{args.size} px, stride {args.stride}, {n} windows, batch {args.batch}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| path | seconds | windows/s |")
    print("|---|---:|---:|")
    print(f"| model inference only | {t_inf:.2f} | {n / t_inf:,.0f} |")
    print(f"| lczldl predict (read, window, infer, write) | {t_map:.2f} | {n / t_map:,.0f} |")
    print(f"mapping / inference throughput: {t_inf / t_map:.2f}")


if __name__ == "__main__":
    main()
