"""Owns how the synthetic twin's pixels are rendered from a latent scene (step 2 of
:mod:`lczldl.data.synth`): surface materials and their spectra, each LCZ's material mix, building
scale and height (shadows), a city's appearance, and the regions of a patch's LCZ components."""

from __future__ import annotations

import numpy as np

from lczldl.constants import BANDS, PATCH_SIZE, REFLECTANCE_SCALE

N_BANDS = len(BANDS)

# materials: roof, paved, vegetation, soil, water, shadow
#                 B2    B3    B4    B5    B6    B7    B8    B8A   B11   B12
SPECTRA = np.array([
    [.120, .125, .130, .140, .150, .155, .160, .165, .200, .180],   # roof (tile / concrete)
    [.090, .095, .100, .105, .110, .112, .115, .118, .140, .125],   # paved / asphalt
    [.030, .055, .035, .090, .250, .310, .340, .350, .180, .090],   # vegetation
    [.080, .100, .130, .160, .190, .210, .220, .230, .300, .260],   # bare soil
    [.060, .055, .035, .025, .015, .012, .010, .009, .005, .004],   # water
    [.025, .028, .030, .032, .038, .040, .042, .043, .040, .032],   # shadow
], dtype=np.float32)
#: light sheet-metal roofs (LCZ 7), bright large industrial roofs (LCZ 8), dark industry (LCZ 10)
ROOF_LIGHT = np.array([.200, .210, .220, .225, .230, .232, .235, .238, .260, .240], dtype=np.float32)
ROOF_INDUSTRIAL = np.array([.170, .175, .180, .185, .190, .195, .200, .205, .230, .210], dtype=np.float32)
ROOF_DARK = np.array([.070, .072, .075, .078, .082, .085, .088, .090, .110, .100], dtype=np.float32)

#: per LCZ: material shares (roof, paved, vegetation, soil, water), building scale (blob size,
#: 1 = small houses), building height (shadow length in pixels), roof type
PROFILES: dict[int, tuple[tuple[float, ...], float, int, str]] = {
    1: ((.45, .40, .08, .04, .03), 2.5, 4, "tile"),
    2: ((.55, .33, .08, .04, .00), 2.0, 2, "tile"),
    3: ((.58, .24, .14, .04, .00), 1.0, 1, "tile"),
    4: ((.24, .28, .40, .06, .02), 2.5, 4, "tile"),
    5: ((.32, .28, .34, .06, .00), 2.0, 2, "tile"),
    6: ((.28, .20, .46, .06, .00), 1.0, 1, "tile"),
    7: ((.62, .06, .08, .24, .00), 0.6, 0, "light"),
    8: ((.52, .38, .05, .05, .00), 4.0, 1, "industrial"),
    9: ((.12, .10, .60, .18, .00), 1.2, 1, "tile"),
    10: ((.42, .34, .06, .16, .02), 3.5, 2, "dark"),
    11: ((.00, .02, .95, .03, .00), 1.0, 0, "tile"),
    12: ((.02, .04, .74, .20, .00), 1.0, 0, "tile"),
    14: ((.00, .02, .78, .20, .00), 1.0, 0, "tile"),
}


def smooth_field(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """(n, 32, 32) smooth random field, rank-normalised per patch to [0, 1) (thresholds = shares).

    Bilinear upsampling of coarse uniform noise; ``scale`` ~ blob size (1 = about 8 px cells).
    """
    coarse = max(2, int(round(PATCH_SIZE / (8 * scale))) + 1)
    g = rng.random((n, coarse, coarse), dtype=np.float32)
    x = np.linspace(0, coarse - 1, PATCH_SIZE, dtype=np.float32)
    i0 = np.clip(x.astype(int), 0, coarse - 2)
    t = (x - i0)[None, :]
    rows = g[:, i0, :] * (1 - t.T)[None] + g[:, i0 + 1, :] * t.T[None]
    field = rows[:, :, i0] * (1 - t)[None] + rows[:, :, i0 + 1] * t[None]
    field += rng.random(field.shape, dtype=np.float32) * 0.02      # break ties
    flat = field.reshape(n, -1)
    ranks = flat.argsort(axis=1).argsort(axis=1).astype(np.float32) / flat.shape[1]
    return ranks.reshape(n, PATCH_SIZE, PATCH_SIZE)


def render(rng: np.random.Generator, lcz: int, n: int, city: dict) -> np.ndarray:
    """(n, 10, 32, 32) reflectance of ``n`` pure patches of LCZ ``lcz`` in ``city``'s appearance."""
    shares, scale, height, roof_type = PROFILES[lcz]
    shares = np.asarray(shares, dtype=np.float64)
    jit = rng.dirichlet(shares * 25 + 0.05, size=n).astype(np.float32)  # density varies
    field = smooth_field(rng, n, scale * rng.uniform(0.8, 1.25))
    cum = np.cumsum(jit, axis=1)
    mat = np.minimum((field[:, None] >= cum[:, :, None, None]).sum(axis=1), 4)
    if height > 0:                      # shadows cast away from the sun, length ~ height
        roof = mat == 0
        dy, dx = city["sun"]
        cast = np.zeros_like(roof)
        for k in range(1, height + 1):
            cast |= np.roll(roof, (k * dy, k * dx), axis=(1, 2))
        mat = np.where(cast & ~roof, 5, mat)
    roof_spec = {"tile": SPECTRA[0], "light": ROOF_LIGHT, "industrial": ROOF_INDUSTRIAL,
                 "dark": ROOF_DARK}[roof_type]
    if roof_type == "tile":
        roof_spec = (1 - city["roof_mix"]) * roof_spec + city["roof_mix"] * city["roof_alt"]
    spectra = np.concatenate([roof_spec[None], SPECTRA[1:]], axis=0).copy()
    spectra[2] *= city["vigour"]
    img = spectra[mat].transpose(0, 3, 1, 2)                       # (n, 10, 32, 32)
    img = img * city["gain"][None, :, None, None] + city["offset"][None, :, None, None]
    return img * rng.normal(1.0, 0.05, (n, 1, 1, 1)).astype(np.float32)


def make_city(rng: np.random.Generator) -> dict:
    """Appearance of one city: band gain / offset, season (vegetation vigour), roofs, sun."""
    haze = rng.uniform(0.0, 0.02)
    decay = np.linspace(1.0, 0.1, N_BANDS, dtype=np.float32)
    sun = [(1, 1), (1, 0), (0, 1), (1, -1)][int(rng.integers(4))]
    return {
        "gain": (rng.normal(1.0, 0.08) * rng.normal(1.0, 0.04, N_BANDS)).astype(np.float32),
        "offset": (haze * decay + rng.normal(0.0, 0.004, N_BANDS)).astype(np.float32),
        "vigour": np.float32(rng.uniform(0.75, 1.15)),
        "roof_mix": float(rng.uniform(0.0, 0.5)),
        "roof_alt": [ROOF_LIGHT, ROOF_DARK, SPECTRA[3]][int(rng.integers(3))],
        "sun": sun,
    }


def render_scene(rng: np.random.Generator, latent: dict, city: dict) -> np.ndarray:
    """(n, 32, 32, 10) float32 reflectance of the latent scenes (regions with the latent shares)."""
    comp, weight = latent["comp"], latent["weight"]
    n = comp.shape[0]
    layers = np.empty((3, n, N_BANDS, PATCH_SIZE, PATCH_SIZE), dtype=np.float32)
    for j in range(3):
        for lcz in np.unique(comp[:, j]):
            idx = np.nonzero(comp[:, j] == lcz)[0]
            layers[j, idx] = render(rng, int(lcz), idx.size, city)
    region = smooth_field(rng, n, 2.0)                            # coarse blobs
    ws = weight[:, 1, None, None].astype(np.float32)
    wt = weight[:, 2, None, None].astype(np.float32)
    pick = np.where(region < ws, 1, np.where(region < ws + wt, 2, 0))
    px = np.take_along_axis(layers, pick[None, :, None], axis=0)[0]
    px += rng.normal(0.0, 0.005, px.shape).astype(np.float32)
    px = np.clip(px, 0.0, None)
    return np.round(px.transpose(0, 2, 3, 1) * REFLECTANCE_SCALE) / REFLECTANCE_SCALE  # S2 quantisation
