"""Owns what a map run records and says: the GeoTIFF tags, the lines describing what was read,
converted and masked, and the window statistics of predict.json (cloud-masked shares)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lczldl import __version__
from lczldl.maps.grid import OutputGrid
from lczldl.maps.radiometry import SO2SAT_BANDS
from lczldl.maps.scene import SceneReader


def geotiff_tags(scene: SceneReader, checkpoints: Sequence[Path], sha: list[str], settings: dict) -> dict[str, str]:
    """GeoTIFF metadata tags of every output (strings)."""
    m = scene.metadata
    offsets, scales = {m.offsets[b] for b in SO2SAT_BANDS}, {m.scales[b] for b in SO2SAT_BANDS}
    return {
        "LCZLDL_VERSION": __version__, "SCENE": m.source, "PRODUCT_ID": m.product_id or "unknown",
        "PROCESSING_LEVEL": m.level, "PROCESSING_BASELINE": m.processing_baseline or "unknown",
        "RADIOMETRY": m.radiometry(),
        "OFFSET": f"{offsets.pop():g}" if len(offsets) == 1 else ",".join(f"{b}={m.offsets[b]:g}" for b in SO2SAT_BANDS),
        "SCALE": f"{scales.pop():g}" if len(scales) == 1 else ",".join(f"{b}={m.scales[b]:g}" for b in SO2SAT_BANDS),
        "CLOUD_MASK": m.cloud_mask,
        "MAX_CLOUD_SHARE": f"{settings['max_cloud_share']:g}",
        "CHECKPOINTS": ";".join(str(c) for c in checkpoints), "CHECKPOINT_SHA256": ";".join(sha),
        "STRIDE_PX": str(settings["stride"]), "MC_PASSES": str(settings["mc"]),
        "TEMPERATURES": ",".join(f"{t:g}" for t in settings["temperatures"]),
        "SENSING_TIME": m.sensing_time or "unknown",
        "LCZ_FILTER_SIGMA_M": str(settings["filter_sigma_m"]),
    }


def describe_scene(scene: SceneReader, grid: OutputGrid, area: dict | None) -> list[str]:
    """Lines saying what is read, converted, masked and mapped (the CLI prints them)."""
    m = scene.metadata
    what = {"L1C": "Level-1C (top-of-atmosphere)", "L2A": "Level-2A (bottom-of-atmosphere)"}.get(m.level)
    head = f"{what} product {m.product_id}" if what else f"{m.kind} (product level unknown)"
    if m.processing_baseline:
        head += f", processing baseline {m.processing_baseline}"
    nodata = "the file's nodata value" if m.kind == "geotiff" else "DN 0"
    masked = m.cloud_mask if not m.cloud_mask.startswith("none") else f"no mask applied - {m.cloud_mask}"
    lines = [f"read: {head} from {m.source}", f"radiometry: {m.radiometry()}; {nodata} = no data",
             f"cloud mask: {masked}"]
    where = f"area of interest {area['label']}: " if area else ""
    lines.append(f"map: {where}{grid.rows} x {grid.cols} windows of 32 x 32 px at stride {grid.stride} px "
                 f"({abs(grid.transform.a):g} m output pixels)")
    return lines


def window_stats(stats: dict, n_windows: int) -> dict:
    """Window counts plus ``cloud_masked_share`` (windows dropped for clouds among windows with data)
    and ``cloud_pixel_share`` (mean masked share of their pixels); ``stats`` holds the sums."""
    with_data = max(stats.pop("windows_with_data"), 1)
    share_sum = stats.pop("cloud_share_sum")
    return {**stats, "windows": n_windows,
            # map cells lost to clouds, among cells with data
            "cloud_masked_share": stats["windows_cloud"] / with_data,
            # mean share of cloud-masked pixels in the windows with data
            "cloud_pixel_share": share_sum / with_data}
