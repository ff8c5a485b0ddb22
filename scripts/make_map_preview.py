"""Make the README's map preview: a scene mosaicked from twin test patches, mapped by a trained run.

    python scripts/make_map_preview.py --store STUDY/store --checkpoint STUDY/runs/dist/seed0/checkpoints/best.ckpt \
        --out docs/images

The scene is a 4 x 4 arrangement of class regions (each 4 x 4 test patches of one majority class,
picked among unanimous patches where possible), 512 x 512 px at 10 m, EPSG:32632, written as a
uint16 GeoTIFF of digital numbers (reflectance x 10000); it is mapped at the default stride of 10 px
(100 m map pixels, the scale the published LCZ filter was made for). The picture is the map's own
preview.png: the LCZ argmax, the Gaussian-filtered map (lcz_filter) and the predictive entropy.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from lczldl.config import MapsConfig
from lczldl.constants import REFLECTANCE_SCALE
from lczldl.data.store import open_store
from lczldl.layout import MAP_PREVIEW
from lczldl.maps.predict import predict_scene

REGIONS = np.array([[5, 1, 4, 7], [2, 5, 9, 0], [7, 4, 1, 5], [9, 2, 5, 3]])  # class indices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    args = ap.parse_args()
    test = open_store(args.store).split("test")
    labels = np.asarray(test.label)
    ent = np.asarray(test.vote_entropy)
    rng = np.random.default_rng(0)
    img = np.zeros((10, 512, 512), dtype=np.uint16)
    for i in range(4):
        for j in range(4):
            k = REGIONS[i, j]
            pool = np.nonzero((labels == k) & (ent < 0.35))[0]
            if len(pool) < 16:
                pool = np.nonzero(labels == k)[0]
            rows = rng.choice(pool, 16, replace=len(pool) < 16)
            patches = test.image.read(rows)
            for n, p in enumerate(patches):
                r, c = i * 128 + (n // 4) * 32, j * 128 + (n % 4) * 32
                img[:, r:r + 32, c:c + 32] = p
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.tif"
        with rasterio.open(scene, "w", driver="GTiff", width=512, height=512, count=10, dtype="uint16",
                           crs="EPSG:32632", transform=from_origin(500000, 5300000, 10, 10)) as dst:
            dst.write(img)
        # integer scenes need their scale named (lczldl predict refuses to guess it)
        rec = predict_scene([args.checkpoint], scene, Path(tmp) / "map", MapsConfig(scale=REFLECTANCE_SCALE),
                            progress=False)
        shutil.copy(Path(tmp) / "map" / MAP_PREVIEW, args.out / "map_preview.png")
    print(f"wrote {args.out / 'map_preview.png'} ({rec['windows']} windows)")


if __name__ == "__main__":
    main()
