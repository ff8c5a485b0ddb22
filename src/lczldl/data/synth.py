"""A synthetic twin of the So2Sat LCZ42 label-evaluation release (the embedded default data).

Every patch is generated from a latent scene, and the 11 simulated experts vote on that latent scene:

1. Latent content: a primary LCZ p (city-specific class shares near the real majority shares) and,
   for most patches, a neighbouring LCZ s (the real disagreement pairs: 1<->4, 3<->7, 4<->5, 5->2,
   6->3, 9->6, 10->8, ...) covering a share w of the patch (w = 0 for clean patches).
2. Pixels: each LCZ is a mix of surface materials (roof, paved, vegetation, soil, water, shadow)
   with its own building scale and height (shadow share). A smooth random field splits the patch
   into the p-region and the s-region (so the ambiguity is visible), a second field places the
   materials. Ten Sentinel-2 bands in reflectance from per-material spectra; per-city appearance
   shift (per-band gain/offset, roof material); sensor noise.
3. Votes: expert e perceives the mixture (1-w) e_p + w e_s with its own sharpness and noise, passes it
   through its own confusion tendencies, and votes; votes are missing (0) with a small probability,
   a few are non-urban (low plants / trees for sparse classes). A few patches have a non-urban
   primary (dropped by the label rules) and a handful have no votes at all.
Addon cities are LCZ 7 (lightweight low-rise) with disagreement towards 3 and 6; their files hold
votes only (no original-label column), as in the release.

The output is exactly the release format (see ``lczldl.data.readers.votes``).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lczldl.constants import ADDON_CITIES, EUROPEAN_CITIES, N_EXPERTS
from lczldl.errors import DataError

SIZES = {  # patches per European city, per addon city
    "tiny": (60, 8),
    "small": (420, 30),
    "medium": (4200, 300),
    "full": (21000, 1500),
}

#: real majority-class shares LCZ 1..10 (PROTOCOL.md)
REAL_SHARES = np.array([.007, .165, .039, .022, .182, .312, .045, .161, .018, .051])

# materials: roof, paved, vegetation, soil, water, shadow
MATERIALS = ("roof", "paved", "vegetation", "soil", "water", "shadow")
#                 B2    B3    B4    B5    B6    B7    B8    B8A   B11   B12
SPECTRA = np.array([
    [.120, .125, .130, .140, .150, .155, .160, .165, .200, .180],   # roof (tile/concrete)
    [.090, .095, .100, .105, .110, .112, .115, .118, .140, .125],   # paved
    [.030, .055, .035, .090, .250, .310, .340, .350, .180, .090],   # vegetation
    [.080, .100, .130, .160, .190, .210, .220, .230, .300, .260],   # soil
    [.060, .055, .035, .025, .015, .012, .010, .009, .005, .004],   # water
    [.025, .028, .030, .032, .038, .040, .042, .043, .040, .032],   # shadow
], dtype=np.float32)
#: light metal/sheet roofs (LCZ 7) and industrial roofs (LCZ 10, 8) differ from tile/concrete
ROOF_LIGHT = np.array([.200, .210, .220, .225, .230, .232, .235, .238, .260, .240], dtype=np.float32)

# per LCZ: material shares (roof, paved, veg, soil, water), building scale (1 = small), shadow share
PROFILES = {
    1: ((.42, .40, .10, .05, .03), 3.0, .30),
    2: ((.52, .34, .10, .04, .00), 2.0, .16),
    3: ((.56, .26, .14, .04, .00), 1.0, .06),
    4: ((.26, .26, .40, .06, .02), 3.0, .24),
    5: ((.32, .27, .35, .06, .00), 2.0, .12),
    6: ((.30, .20, .44, .06, .00), 1.0, .05),
    7: ((.62, .06, .08, .24, .00), 0.5, .02),
    8: ((.56, .34, .06, .04, .00), 4.0, .03),
    9: ((.12, .10, .62, .16, .00), 1.5, .02),
    10: ((.40, .36, .06, .16, .02), 4.0, .05),
    11: ((.00, .02, .95, .03, .00), 1.0, .08),   # dense trees (non-urban)
    14: ((.00, .02, .80, .18, .00), 1.0, .00),   # low plants (non-urban)
}
#: neighbouring LCZ for mixtures (the real disagreement pairs), with weights
NEIGHBOURS = {
    1: ((4, 2), (.8, .2)), 2: ((5, 3, 1), (.4, .35, .25)), 3: ((7, 6, 2), (.55, .3, .15)),
    4: ((5, 1), (.6, .4)), 5: ((2, 4, 6), (.5, .3, .2)), 6: ((3, 5, 9), (.55, .3, .15)),
    7: ((3, 6), (.7, .3)), 8: ((10, 2, 3), (.5, .25, .25)), 9: ((6, 14), (.75, .25)),
    10: ((8, 2), (.8, .2)),
}
URBAN_LCZ = np.arange(1, 11)
#: primary-class shares of European patches: the real shares, less what mixtures and the addon
#: cities (all LCZ 7) add to LCZ 1 and 7 through voting
CITY_SHARES = np.array([.004, .170, .045, .022, .185, .318, .012, .172, .020, .052])
CITY_SHARES = CITY_SHARES / CITY_SHARES.sum()


def _smooth_field(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """(n, 32, 32) smooth random field in [0, 1): bilinear upsampling of coarse noise."""
    coarse = max(2, int(round(32 / (4 * scale))) + 1)
    g = rng.random((n, coarse, coarse), dtype=np.float32)
    x = np.linspace(0, coarse - 1, 32, dtype=np.float32)
    i0 = np.clip(x.astype(int), 0, coarse - 2)
    t = (x - i0)[None, :]
    rows = g[:, i0, :] * (1 - t.T)[None] + g[:, i0 + 1, :] * t.T[None]
    field = rows[:, :, i0] * (1 - t)[None] + rows[:, :, i0 + 1] * t[None]
    # rank-normalise per patch so thresholds are area shares
    flat = field.reshape(n, -1)
    ranks = flat.argsort(axis=1).argsort(axis=1).astype(np.float32) / flat.shape[1]
    return ranks.reshape(n, 32, 32)


def _render(rng: np.random.Generator, lcz: int, n: int, gain: np.ndarray, offset: np.ndarray,
            roof_mix: float) -> np.ndarray:
    """(n, 10, 32, 32) pixels of pure LCZ ``lcz`` (before mixing)."""
    shares, scale, shadow = PROFILES[lcz]
    shares = np.array(shares, dtype=np.float32)
    # per-patch jitter of the material shares (density varies within an LCZ)
    jit = rng.dirichlet(shares * 30 + 0.05, size=n).astype(np.float32)
    field = _smooth_field(rng, n, scale)
    cum = np.cumsum(jit, axis=1)
    mat = (field[:, None] >= cum[:, :, None, None]).sum(axis=1)          # (n,32,32) 0..4
    mat = np.minimum(mat, 4)
    # shadows: cast next to roofs (shifted roof mask), share grows with height
    roof = mat == 0
    shifted = np.roll(roof, 1, axis=2) & ~roof
    cast = shifted & (rng.random((n, 32, 32)) < min(1.0, shadow * 4))
    mat = np.where(cast, 5, mat)
    roof_spec = SPECTRA[0]
    if lcz in (7, 8, 10):
        roof_spec = 0.3 * SPECTRA[0] + 0.7 * ROOF_LIGHT
    roof_spec = (1 - roof_mix) * roof_spec + roof_mix * ROOF_LIGHT
    spectra = np.concatenate([roof_spec[None], SPECTRA[1:]], axis=0)    # (6, 10)
    img = spectra[mat].transpose(0, 3, 1, 2)                             # (n,10,32,32)
    img = img * gain[None, :, None, None] + offset[None, :, None, None]
    brightness = rng.normal(1.0, 0.06, (n, 1, 1, 1)).astype(np.float32)
    return img * brightness


def _experts(rng: np.random.Generator) -> list[dict]:
    """Eleven experts: sharpness, noise and personal confusion tendencies."""
    out = []
    for _ in range(N_EXPERTS):
        conf = np.eye(10, dtype=np.float64)
        for a, (nbrs, _w) in NEIGHBOURS.items():
            for b in nbrs:
                if b <= 10 and rng.random() < 0.35:   # this expert tends to call a "b"
                    leak = rng.uniform(0.03, 0.12)
                    conf[a - 1, a - 1] -= leak
                    conf[a - 1, b - 1] += leak
        out.append({"sharp": rng.uniform(2.6, 4.2), "noise": rng.uniform(0.25, 0.6), "conf": conf,
                    "missing": rng.uniform(0.0, 0.03)})
    return out


def _votes(rng: np.random.Generator, experts: list[dict], primary: np.ndarray, secondary: np.ndarray,
           w: np.ndarray) -> np.ndarray:
    """(n, 11) votes (LCZ ids, 0 = none) of the experts on latent mixtures."""
    n = len(primary)
    votes = np.zeros((n, N_EXPERTS), dtype=np.int64)
    # latent mixture over 17 LCZ ids (index 0..16)
    mix = np.full((n, 17), 1e-3)
    mix[np.arange(n), primary - 1] += 1 - w
    mix[np.arange(n), secondary - 1] += w
    mix /= mix.sum(axis=1, keepdims=True)
    for e, ex in enumerate(experts):
        logits = ex["sharp"] * np.log(mix) + rng.normal(0, ex["noise"], mix.shape) * (mix > 0.02)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        urban = p[:, :10] @ ex["conf"]
        p = np.concatenate([urban, p[:, 10:]], axis=1)
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random((n, 1))
        votes[:, e] = (u > np.cumsum(p, axis=1)).sum(axis=1) + 1
        votes[rng.random(n) < ex["missing"], e] = 0
    return np.minimum(votes, 17)


def _city_patches(rng: np.random.Generator, n: int, experts: list[dict], addon: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n,32,32,10) float32 and labels: (n, 12) for cities, (n, 11) for addons."""
    gain = rng.normal(1.0, 0.07, 10).astype(np.float32)
    offset = rng.normal(0.0, 0.008, 10).astype(np.float32)
    roof_mix = float(rng.uniform(0.0, 0.35))
    if addon:
        primary = np.full(n, 7)
    else:
        shares = rng.dirichlet(CITY_SHARES * 60 + 0.2)
        primary = rng.choice(URBAN_LCZ, size=n, p=shares)
        odd = rng.random(n) < 0.02                              # a few non-urban patches
        primary[odd] = rng.choice([11, 14], size=int(odd.sum()))
    secondary = primary.copy()
    for a, (nbrs, wts) in NEIGHBOURS.items():
        idx = np.nonzero(primary == a)[0]
        secondary[idx] = rng.choice(nbrs, size=idx.size, p=wts)
    clean = rng.random(n) < 0.38
    w = np.where(clean, 0.0, rng.beta(1.4, 3.0, n) * 0.75).astype(np.float64)
    nonurban = primary > 10
    secondary[nonurban] = 9
    w[nonurban] = rng.uniform(0.0, 0.3, int(nonurban.sum()))
    pixels = np.empty((n, 10, 32, 32), dtype=np.float32)
    base = np.empty_like(pixels)
    for lcz in np.unique(primary):
        idx = np.nonzero(primary == lcz)[0]
        base[idx] = _render(rng, int(lcz), idx.size, gain, offset, roof_mix)
    other = np.empty_like(pixels)
    for lcz in np.unique(secondary):
        idx = np.nonzero(secondary == lcz)[0]
        other[idx] = _render(rng, int(lcz), idx.size, gain, offset, roof_mix)
    region = _smooth_field(rng, n, 4.0) < w[:, None, None]                # (n,32,32) share w
    pixels = np.where(region[:, None], other, base)
    pixels += rng.normal(0, 0.006, pixels.shape).astype(np.float32)
    pixels = np.clip(pixels, 0.0, None)
    votes = _votes(rng, experts, primary, secondary, w)
    n_empty = max(1, n // 800) if not addon else 0
    votes[rng.choice(n, n_empty, replace=False)] = 0                       # rows with no vote
    if addon:
        labels = votes
    else:
        original = np.where(rng.random(n) < 0.9, primary, np.where(w > 0.3, secondary, primary))
        labels = np.concatenate([votes, original[:, None]], axis=1)
    return pixels.transpose(0, 2, 3, 1).copy(), labels.astype(np.int64)


def synthesize(out: Path, seed: int = 0, size: str = "small", progress: bool = True) -> dict:
    """Write the 18 cities' vote files of the twin into ``out``; returns {file: rows}."""
    if size not in SIZES:
        raise DataError(f"unknown twin size '{size}', use one of {', '.join(SIZES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_city, n_addon = SIZES[size]
    master = np.random.default_rng(seed)
    experts = _experts(master)
    written = {}
    from rich.progress import track

    jobs = [(c, False) for c in EUROPEAN_CITIES] + [(c, True) for c in ADDON_CITIES]
    for city, addon in track(jobs, description="synthesising twin", disable=not progress,
                             transient=True):
        city_key = sum(ord(ch) * 31**i for i, ch in enumerate(city)) % (2**31)
        rng = np.random.default_rng([seed, city_key])
        n = n_addon if addon else n_city
        name = f"{city}_addon.h5" if addon else f"{city}.h5"
        tmp = out / f".{name}.tmp"
        with h5py.File(tmp, "w") as f:
            chunk = 2000
            ds = f.create_dataset("sen2", shape=(n, 32, 32, 10), dtype="float64",
                                  chunks=(min(n, 256), 32, 32, 10))
            labels = []
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                px, lab = _city_patches(rng, m, experts, addon)
                ds[start:start + m] = px
                labels.append(lab)
            f.create_dataset("label", data=np.concatenate(labels))
            f.attrs["lczldl_synthetic_twin"] = f"seed={seed} size={size}"
        os.replace(tmp, out / name)
        written[name] = n
    return written
