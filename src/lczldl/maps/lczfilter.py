"""Owns ``lcz_filter``: the Gaussian-filtered LCZ map as the LCZ Generator and the global 100 m LCZ
map make it. Pure functions, no file access.

The published filter (Demuzere et al. 2020, Sci. Data 7:264, "Combining expert and crowd-sourced
training data to map urban form and functions for the continental US"; used unchanged by the LCZ
Generator, Demuzere et al. 2021, Front. Environ. Sci. 9:637455, and the global map, Demuzere et al.
2022, Earth Syst. Sci. Data 14:3835; Earth Engine code in the authors' public
``multitemporal-lcz-mapping`` repository, ``_gaussian_filter``):

- for each class k, the indicator map [lcz == k] is convolved with a normalised Gaussian kernel
  ``ee.Kernel.gaussian(radius_k, sigma_k, "meters")`` whose radius and sigma depend on the class
  (:data:`PUBLISHED_KERNELS`);
- each pixel takes the class with the largest filtered value (``qualityMosaic``).

Conventions here
- Kernels are square, (2r + 1) x (2r + 1) pixels with r = floor(radius / pixel size) (the pixel
  offsets within the radius along each axis), weights exp(-(dx^2 + dy^2) / (2 sigma^2)) at pixel
  centres, normalised to sum 1 (Earth Engine's defaults; how Earth Engine rounds a radius that is
  not a whole number of pixels is not documented, so maps at other pixel sizes may differ there).
- No-data (LCZ 0) and the space beyond the map count for no class (zero padding, no
  renormalisation); a no-data pixel stays no-data. Ties go to the lower LCZ (Earth Engine's
  qualityMosaic tie rule is not documented).
- The filter of a pixel reads its neighbours within the largest radius: :func:`filter_strips`
  reads each strip of rows with that halo, so the result does not depend on the strip size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np

#: LCZ id -> (kernel radius m, sigma m) of the published filter (Demuzere et al. 2020; the LCZ
#: Generator's and the global map's ``LCZ_Filter``)
PUBLISHED_KERNELS: dict[int, tuple[float, float]] = {
    1: (200, 100), 2: (300, 150), 3: (300, 150), 4: (300, 150), 5: (300, 150), 6: (300, 150),
    7: (300, 150), 8: (500, 250), 9: (300, 150), 10: (500, 250), 11: (200, 75), 12: (200, 75),
    13: (200, 75), 14: (200, 75), 15: (300, 150), 16: (200, 75), 17: (50, 25),
}
#: a sigma given in metres applies to every class with a kernel radius of this many sigmas
RADIUS_SIGMAS = 2.0


def kernel_1d(radius_px: int, sigma_px: float) -> np.ndarray:
    """(2r + 1,) float64 weights exp(-x^2 / (2 sigma^2)), x = -r..r, normalised so that the 2-D
    kernel (their outer product) sums to 1; r = 0 (or sigma 0) is the identity [1]."""
    if radius_px == 0 or sigma_px == 0:
        return np.ones(1)
    x = np.arange(-radius_px, radius_px + 1, dtype=np.float64)
    g = np.exp(-(x * x) / (2.0 * sigma_px * sigma_px))
    return g / g.sum()


def class_kernels(num_classes: int, pixel_m: float,
                  sigma_m: float | Literal["published"] = "published") -> dict[int, np.ndarray]:
    """LCZ id 1..K -> the 1-D factor of its separable kernel at ``pixel_m`` metre pixels: the
    published class-specific kernels, or one sigma (metres) for every class with radius
    :data:`RADIUS_SIGMAS` sigma."""
    out = {}
    for k in range(1, num_classes + 1):
        radius, sigma = PUBLISHED_KERNELS[k] if sigma_m == "published" else (RADIUS_SIGMAS * sigma_m, sigma_m)
        out[k] = kernel_1d(int(math.floor(radius / pixel_m + 1e-9)), sigma / pixel_m)
    return out


def halo_px(kernels: dict[int, np.ndarray]) -> int:
    """Pixels of neighbours the filter reads on each side: the largest kernel radius."""
    return max((len(g) - 1) // 2 for g in kernels.values())


def _correlate(x: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """Zero-padded 'same' correlation of ``x`` with the symmetric 1-D ``g`` along ``axis``."""
    from scipy.ndimage import correlate1d

    return correlate1d(x, g, axis=axis, mode="constant", cval=0.0)


def filter_window(lcz: np.ndarray, halo: int, kernels: dict[int, np.ndarray]) -> np.ndarray:
    """Filtered LCZ ids of the inner part of ``lcz``: (H + 2 halo, W + 2 halo) uint8 (0 = no data,
    pixels beyond the map 0 too) -> (H, W) uint8. ``halo`` >= :func:`halo_px` of ``kernels``."""
    h, w = lcz.shape[0] - 2 * halo, lcz.shape[1] - 2 * halo
    best = np.zeros((h, w), dtype=np.float64)
    out = np.zeros((h, w), dtype=np.uint8)
    inner = lcz[halo:halo + h, halo:halo + w]
    for k, g in kernels.items():
        present = lcz == k
        if not present.any():
            continue
        score = _correlate(_correlate(present.astype(np.float64), g, 0), g, 1)[halo:halo + h, halo:halo + w]
        better = score > best                      # strictly: ties keep the lower LCZ
        best[better] = score[better]
        out[better] = k
    out[inner == 0] = 0
    return out


def filter_strips(lcz: np.ndarray, kernels: dict[int, np.ndarray],
                  strip_rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(r0, r1, filtered rows r0..r1 of ``lcz``) for strips of ``strip_rows`` rows of the whole map
    ``lcz`` (rows, cols) uint8; each strip is filtered with a halo of :func:`halo_px` rows and
    columns (zeros beyond the map), so the result is the same for any ``strip_rows``."""
    halo = halo_px(kernels)
    rows, cols = lcz.shape
    padded = np.zeros((rows + 2 * halo, cols + 2 * halo), dtype=np.uint8)
    padded[halo:halo + rows, halo:halo + cols] = lcz
    for r0 in range(0, rows, max(1, int(strip_rows))):
        r1 = min(rows, r0 + strip_rows)
        yield r0, r1, filter_window(padded[r0:r1 + 2 * halo], halo, kernels)
