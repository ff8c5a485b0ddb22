"""Owns the Sentinel-2 facts a map needs: band names and ids, digital number -> reflectance, no-data
and the cloud-mask classes (SCL, MSK_CLASSI). Pure functions; no file access.

Conventions
- Band names are the products' (``B02``, ``B8A``); :data:`SO2SAT_BANDS` is So2Sat's order, taken
  from :data:`lczldl.constants.BANDS` (``S2_B02`` -> ``B02``).
- ``band_id`` 0..12 in the product metadata (``RADIO_ADD_OFFSET band_id=...``) is the position in
  :data:`S2_BAND_IDS`.
- reflectance = (DN + offset) / scale, where scale is the product's ``QUANTIFICATION_VALUE`` (L1C)
  or ``BOA_QUANTIFICATION_VALUE`` (L2A), usually 10000, and offset its ``RADIO_ADD_OFFSET`` /
  ``BOA_ADD_OFFSET`` (-1000 from processing baseline 04.00 on, 0 before). DN 0 is no-data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from lczldl.constants import BANDS
from lczldl.errors import SceneError

#: Sentinel-2 MSI bands in ``band_id`` order (0..12) of the product metadata
S2_BAND_IDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                                "B10", "B11", "B12")
#: the model's input bands, So2Sat order, product names
SO2SAT_BANDS: tuple[str, ...] = tuple(b.removeprefix("S2_") for b in BANDS)

#: L2A scene classification (SCL) classes
SCL_CLASS_NAMES: dict[int, str] = {
    0: "no data", 1: "saturated or defective", 2: "dark area / cast shadow", 3: "cloud shadow",
    4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
    9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice",
}
#: bands of the L1C ``MSK_CLASSI_B00.jp2`` mask used as clouds (1 = opaque clouds, 2 = cirrus;
#: band 3, snow, is not a cloud)
CLASSI_CLOUD_BANDS: tuple[int, ...] = (1, 2)

#: Sentinel-2's pixel size (m) of each So2Sat band, as delivered in products
NATIVE_RESOLUTION_M: dict[str, float] = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20,
                                         "B07": 20, "B8A": 20, "B11": 20, "B12": 20}
#: pixel sizes (m) closer than this count as equal
RESOLUTION_TOLERANCE_M = 0.01

_BAND_RE = re.compile(r"^(?:S2_)?B?0?(1[0-2]|[1-9]|8A)$", re.IGNORECASE)


def normalise_band(name: str) -> str:
    """``B2``, ``b02``, ``S2_B02``, ``2`` -> ``B02``; ``B8a`` -> ``B8A``; SceneError if not a band."""
    m = _BAND_RE.match(name.strip())
    if not m:
        raise SceneError(f"{name!r} is not a Sentinel-2 band name; use B01..B12 or B8A (e.g. bands="
                         f"{','.join(SO2SAT_BANDS)})", params=("bands",))
    code = m.group(1).upper()
    return "B8A" if code == "8A" else f"B{int(code):02d}"


def parse_band_list(bands: Sequence[str]) -> tuple[str, ...]:
    """``["B04", "B3", ...]`` (a stacked file's band order) -> normalised names; refuses repeats and
    lists missing So2Sat bands."""
    names = tuple(normalise_band(t) for t in bands if t.strip())
    repeated = sorted({b for b in names if names.count(b) > 1})
    if repeated:
        raise SceneError(f"bands names {', '.join(repeated)} more than once; name each band of the file once",
                         params=("bands",))
    missing = [b for b in SO2SAT_BANDS if b not in names]
    if missing:
        raise SceneError(f"bands lacks {', '.join(missing)}; the model needs {', '.join(SO2SAT_BANDS)}",
                         params=("bands",))
    return names


def check_cloud_classes(classes: Iterable[int]) -> tuple[int, ...]:
    """SCL classes to mask, sorted without repeats; SceneError for a number that is no SCL class."""
    values = [int(v) for v in classes]
    bad = [v for v in values if v not in SCL_CLASS_NAMES]
    if bad:
        raise SceneError(f"cloud_classes: {bad} are not SCL classes (0..11: "
                         + ", ".join(f"{k} {v}" for k, v in SCL_CLASS_NAMES.items()) + ")",
                         params=("cloud_classes",))
    return tuple(sorted(set(values)))


def check_resolution(res: tuple[float, float], expected: float, what: str, where: str) -> None:
    """Refuse (one line naming the size found) pixels of ``res`` (x, y metres) other than ``expected``;
    ``what`` names the band (or "a stacked GeoTIFF's bands"), ``where`` the file."""
    x, y = abs(float(res[0])), abs(float(res[1]))
    if abs(x - expected) <= RESOLUTION_TOLERANCE_M and abs(y - expected) <= RESOLUTION_TOLERANCE_M:
        return
    size = f"{x:g} m" if abs(x - y) <= RESOLUTION_TOLERANCE_M else f"{x:g} x {y:g} m"
    raise SceneError(f"{where}: {what} has {size} pixels, not Sentinel-2's {expected:g} m (10 m: B02 B03 B04 B08; "
                     "20 m: B05 B06 B07 B8A B11 B12); give the product's own files, or allow_resolution to map a "
                     "resampled scene anyway", params=("allow_resolution",))


def to_reflectance(values: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """(DN + offset) / scale as float32, any shape. The sum is exact in float32 for DN < 2**24, and
    IEEE division rounds once, so the result is the float32 nearest to the exact quotient."""
    return (values.astype(np.float32, copy=False) + np.float32(offset)) / np.float32(scale)


def nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where ``values`` equal the no-data value (DN 0 for products) or are not finite."""
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values)
        if nodata is not None and np.isfinite(nodata):
            bad |= values == values.dtype.type(nodata)
        return bad
    if nodata is None:
        return np.zeros(values.shape, dtype=bool)
    return values == nodata


def scl_cloud_mask(scl: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """True where the SCL class is one of ``classes``."""
    return np.isin(scl, np.asarray(tuple(classes), dtype=scl.dtype))


def classi_cloud_mask(layers: np.ndarray) -> np.ndarray:
    """(n, h, w) MSK_CLASSI layers (the :data:`CLASSI_CLOUD_BANDS`) -> True where any is set."""
    return (layers != 0).any(axis=0)


def describe_radiometry(offset: float, scale: float) -> str:
    """``reflectance = (DN - 1000) / 10000`` style text for messages and tags."""
    sign = "-" if offset < 0 else "+"
    if offset == 0:
        return f"reflectance = DN / {scale:g}"
    return f"reflectance = (DN {sign} {abs(offset):g}) / {scale:g}"
