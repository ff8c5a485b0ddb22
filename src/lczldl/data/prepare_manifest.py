"""Owns the prepared store's ``manifest.json`` content of the vote release (its So2Sat counterpart:
:func:`lczldl.data.prepare_so2sat.so2sat_manifest`): format tag and version, whether it has votes
(yes) and its classes (LCZ 1-10), per-split counts
(classes, entropy bins, cities, clipped values), drops, bands and train band statistics, the
soft-target fits, the vote counts of the whole raw release that the vote figures draw
(``release_votes``), the sources' checksums and the settings (keys in docs/architecture.md)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from lczldl import __version__
from lczldl.constants import BANDS, N_URBAN, REFLECTANCE_SCALE
from lczldl.data.labels import release_vote_counts
from lczldl.data.prepare_pixels import UINT16_MAX, PixelStats
from lczldl.data.prepare_plan import PreparePlan
from lczldl.distributions import ENTROPY_BIN_EDGES, entropy_histogram
from lczldl.layout import STORE_FORMAT, STORE_VERSION

#: what ``release_votes`` counts (recorded in the manifest)
RELEASE_VOTES_NOTE = "every row of the raw files, before the urban filter"
#: how image.npy encodes pixels (recorded in the manifest)
PIXEL_ENCODING = (f"image.npy: uint16 = round(reflectance * {REFLECTANCE_SCALE:g}) clipped to [0, {UINT16_MAX}], "
                  "channels-first (N, 10, 32, 32)")


def split_summary(plan: PreparePlan, split: str, arrays: dict[str, np.ndarray], clipped: int) -> dict[str, Any]:
    """The manifest entry of one split from its written per-row arrays."""
    n = plan.n(split)
    ent_counts = entropy_histogram(arrays["vote_entropy"]).tolist()
    return {
        "n": n,
        "class_counts": np.bincount(arrays["label"], minlength=N_URBAN).tolist(),
        "entropy_bins": ent_counts,
        "entropy_shares": [round(x / max(n, 1), 6) for x in ent_counts],
        "cities": {c: int(len(r)) for c, r in plan.parts[split]},
        "clipped_pixel_values": clipped,
    }


def release_votes(plan: PreparePlan) -> dict[str, Any]:
    """The manifest's ``release_votes``: :func:`lczldl.data.labels.release_vote_counts` over every
    row of every city file of ``plan`` (kept or dropped), with its note."""
    labs = [plan.labels[c] for c in plan.cities]
    counts = release_vote_counts(np.concatenate([lab.votes for lab in labs]),
                                 np.concatenate([lab.majority for lab in labs]),
                                 np.concatenate([lab.original for lab in labs]))
    return {**counts, "note": RELEASE_VOTES_NOTE}


def build_manifest(plan: PreparePlan, splits: dict[str, dict[str, Any]], stats: PixelStats) -> dict[str, Any]:
    """The whole manifest (``splits``: split -> :func:`split_summary`)."""
    mean, std = stats.band_mean_std()
    return {
        "format": STORE_FORMAT, "version": STORE_VERSION, "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "votes": True, "classes": list(range(1, N_URBAN + 1)),
        "splits": splits, "dropped": plan.dropped(), "dropped_by_city": plan.dropped_by_city,
        "clipped_pixel_values": int(sum(stats.clipped.values())),
        "cities": plan.city_names, "bands": list(BANDS),
        "pixel_encoding": PIXEL_ENCODING,
        "band_mean": [round(float(x), 7) for x in mean],
        "band_std": [round(float(x), 7) for x in std],
        "entropy_bin_edges": [e if np.isfinite(e) else "inf" for e in ENTROPY_BIN_EDGES],
        "release_votes": release_votes(plan),
        **plan.fits,
        "sources": plan.sources, "config": plan.config,
    }
