"""A synthetic twin of the So2Sat LCZ42 label-evaluation release (the embedded default data).

Every patch is generated from a latent scene; the pixels are rendered from it and 11 simulated
experts vote on it, so the vote distribution carries information that is visible in the pixels.

1. Latent scene: a primary LCZ p (city-specific shares near the real majority shares), and for
   most patches a neighbouring LCZ s covering a share w_s of the patch, sometimes a third LCZ t
   (share w_t). Neighbours follow the real disagreement structure (mean vote distribution given the
   majority class of ../shared/data/votes: 1->4, 3<->7, 4->5, 5->2, 6->3, 9->6, 10->8, ...).
   A share of patches is clean (w = 0). A few patches have a non-urban primary (dense trees, low
   plants) and are dropped by the label rules, as in the release.
2. Pixels (reflectance, the ten So2Sat bands): each LCZ is a mix of surface materials (roof, paved,
   vegetation, bare soil, water) placed by a smooth random field at the LCZ's building scale, and
   shadows cast next to roofs whose length grows with the LCZ's building height (sun direction
   per city). A coarse smooth field splits the patch into the p-, s- and t-regions with the
   latent shares, so the ambiguity is visible. Per-city appearance: per-band gain and offset
   (illumination / haze), vegetation vigour (season), roof material mix; per-patch brightness and
   sensor noise.
3. Votes: expert e perceives the shares with its own noise, sharpens them with its own exponent,
   leaks votes along its own confusion tendencies, slips now and then to a confusable class
   (non-urban ones included: low plants for sparsely built, trees for open low-rise), and leaves a
   vote out with a small probability. For part of the patches the panel's draws are systematic
   (``VOTE_STRATIFY``), so the number of dissenting votes follows the perceived share closely, as
   in the real votes. A handful of rows get no vote at all. The vote parameters are fitted to the
   real votes per majority class by ``scripts/fit_twin_votes.py``.
4. Original So2Sat label (column 11): the latent primary, sometimes the secondary when it covers a
   large share, rarely another neighbour.
Addon cities are LCZ 7 (lightweight low-rise) with disagreement towards 3 and 6; their files hold
the 11 vote columns only, as in the release.

Output: exactly the release format read by ``lczldl.data.readers.votes`` (``sen2`` stored as
float32 reflectance, ``label`` int16). Deterministic for a seed (each city has its own stream).
Sizes (:data:`SIZES`, patches per European / addon city; docs/synthetic_twin.md): tiny 80 / 8
(864 in all), small 560 / 30 (5,840 in all, 3,480 in the authors' train cities), medium 10x,
full 20,000 / 1,250 (210,000, ~42,500 per held-out split, like the real test split of 40,885).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from lczldl.constants import (
    ADDON_CITIES,
    BANDS,
    EUROPEAN_CITIES,
    N_EXPERTS,
    N_LCZ,
    N_URBAN,
    PATCH_SIZE,
)
from lczldl.data.readers.votes import city_file_name
from lczldl.data.synth_pixels import make_city, render_scene
from lczldl.errors import DataError
from lczldl.fileio import atomic_paths, os_error_at

SIZES = {  # patches per European city, per addon city
    "tiny": (80, 8),
    "small": (560, 30),
    "medium": (5600, 300),
    "full": (20000, 1250),
}
CHUNK = 1024

#: real majority-class shares LCZ 1..10 (PROTOCOL.md)
REAL_SHARES = np.array([.007, .165, .039, .022, .182, .312, .045, .161, .018, .051])

# ------------------------------------------------------------------------------------ latent scene
#: neighbours of each primary LCZ (from the real mean vote distribution given the majority) and
#: their relative weights; 14 = low plants, 11 = dense trees, 12 = scattered trees (non-urban).
NEIGHBOURS: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] = {
    1: ((4, 2), (.66, .34)),
    2: ((5, 3, 4, 1), (.35, .25, .25, .15)),
    3: ((7, 2, 6), (.88, .07, .05)),
    4: ((5, 1, 2), (.74, .13, .13)),
    5: ((2, 6, 4, 3), (.64, .22, .10, .04)),
    6: ((3, 5, 9, 2), (.58, .22, .16, .04)),
    7: ((3, 2, 8), (.88, .10, .02)),
    8: ((10, 2), (.75, .25)),
    9: ((6, 14, 12), (.80, .12, .08)),
    10: ((8, 2), (.92, .08)),
    11: ((9, 6), (.6, .4)),
    14: ((9, 6), (.7, .3)),
}
#: per primary LCZ: probability that the patch is clean (w = 0), probability that it is a truly
#: ambiguous boundary patch (w ~ U(AMBIGUOUS_W)), mean and concentration of the share w of a
#: slightly impure patch (Beta), probability of a third component. Fitted (coordinate search on
#: the vote model alone) to the real votes' entropy-bin shares and mean vote distribution *per
#: majority class*, the class shares and the mean top-vote share (docs/synthetic_twin.md).
MIXING: dict[int, tuple[float, float, float, float, float]] = {
    #   clean  ambig  impure third  impure concentration
    1: (0.15, 0.81, 0.18, 0.10, 36),
    2: (0.60, 0.08, 0.12, 0.13, 36),
    3: (0.04, 0.76, 0.21, 0.08, 36),
    4: (0.14, 0.58, 0.18, 0.18, 28),
    5: (0.17, 0.13, 0.17, 0.37, 36),
    6: (0.06, 0.00, 0.12, 0.00, 88),
    7: (0.00, 1.00, 0.15, 0.15, 36),
    8: (1.00, 0.00, 0.08, 0.02, 36),
    9: (0.13, 0.25, 0.20, 0.10, 36),
    10: (0.45, 0.20, 0.12, 0.02, 36),
    11: (0.30, 0.30, 0.15, 0.00, 36),
    14: (0.30, 0.30, 0.15, 0.00, 36),
}
AMBIGUOUS_W = (0.30, 0.52)
#: addon cities: LCZ 7 with disagreement towards 3 and 6 (same fields as ``MIXING``)
ADDON_MIXING = (0.00, 0.85, 0.10, 0.15, 24)
ADDON_NEIGHBOURS = ((3, 6, 2), (.82, .12, .06))
#: primary-class shares of European patches: the real majority shares, less what the addon
#: cities add to LCZ 7 and what mixing moves between classes
CITY_SHARES = np.array([.007, .170, .028, .024, .190, .325, .012, .170, .018, .052])
CITY_SHARES = CITY_SHARES / CITY_SHARES.sum()
NON_URBAN_SHARE = 0.02
#: confusable classes an expert slips to (any LCZ id), per voted LCZ
SLIPS: dict[int, tuple[int, ...]] = {
    1: (4, 2), 2: (5, 1, 3), 3: (7, 6, 2), 4: (5, 1), 5: (2, 6, 4), 6: (3, 5, 9, 12),
    7: (3, 6), 8: (10, 2, 15), 9: (6, 14, 12), 10: (8, 15), 11: (12, 9), 12: (9, 6, 14),
    14: (9, 12, 6),
}


def _neighbour_draw(rng: np.random.Generator, primary: np.ndarray, table: dict) -> np.ndarray:
    """One neighbour per patch drawn from ``table[p]``."""
    out = primary.copy()
    for a in np.unique(primary):
        idx = np.nonzero(primary == a)[0]
        nbrs, wts = table[int(a)]
        out[idx] = rng.choice(nbrs, size=idx.size, p=np.asarray(wts) / np.sum(wts))
    return out


def simulate_latent(rng: np.random.Generator, n: int, addon: bool,
                    shares: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Latent scenes of ``n`` patches: ``comp`` (n, 3) LCZ ids (p, s, t) and ``weight`` (n, 3).

    Weights sum to 1; the secondary / tertiary shares are 0 for clean patches (then s = t = p).
    """
    if addon:
        primary = np.full(n, 7, dtype=np.int64)
        table = {7: ADDON_NEIGHBOURS}
        mixing = {7: ADDON_MIXING}
    else:
        shares = CITY_SHARES if shares is None else shares
        primary = rng.choice(np.arange(1, N_URBAN + 1), size=n, p=shares).astype(np.int64)
        odd = rng.random(n) < NON_URBAN_SHARE
        primary[odd] = rng.choice([11, 14], size=int(odd.sum()))
        table, mixing = NEIGHBOURS, MIXING
    secondary = _neighbour_draw(rng, primary, table)
    tertiary = _neighbour_draw(rng, primary, table)
    w = np.zeros(n)
    third = np.zeros(n, dtype=bool)
    for a in np.unique(primary):
        idx = np.nonzero(primary == a)[0]
        clean, ambig, mean, p3, conc = mixing[int(a)]
        u = rng.random(idx.size)
        mixed = u >= clean
        impure = rng.beta(mean * conc, (1 - mean) * conc, idx.size)
        boundary = rng.uniform(*AMBIGUOUS_W, idx.size)
        w[idx] = np.where(~mixed, 0.0, np.where(u < clean + ambig, boundary, impure))
        third[idx] = mixed & (rng.random(idx.size) < p3)
    third &= tertiary != secondary
    split = rng.uniform(0.25, 0.6, n)
    w_t = np.where(third, w * split, 0.0)
    w_s = w - w_t
    secondary = np.where(w_s > 0, secondary, primary)
    tertiary = np.where(w_t > 0, tertiary, primary)
    comp = np.stack([primary, secondary, tertiary], axis=1)
    weight = np.stack([1 - w, w_s, w_t], axis=1)
    return {"comp": comp, "weight": weight}


# ---------------------------------------------------------------------------------------- experts
#: expert model: probability that an expert has a confusion tendency a -> b for each neighbour
#: pair, and its strength (share of a's votes moved to b); perception noise (sd of the perceived
#: shares), sharpening exponent, slip and missing-vote probabilities, each drawn per expert
#: uniformly from these ranges
EXPERT_LEAK_P = 0.15
EXPERT_LEAK = (0.02, 0.08)
EXPERT_NOISE = (0.02, 0.045)
EXPERT_GAMMA = (1.0, 1.55)
EXPERT_SLIP = (0.001, 0.008)
EXPERT_MISSING = (0.0, 0.02)


def make_experts(rng: np.random.Generator) -> list[dict]:
    """Eleven experts: perception noise, sharpening exponent, confusion tendencies, slips, misses."""
    out = []
    for _ in range(N_EXPERTS):
        leaks = {}
        for a, (nbrs, _w) in NEIGHBOURS.items():
            if a > 10:
                continue
            for b in nbrs:
                if rng.random() < EXPERT_LEAK_P:          # this expert tends to call some a's "b"
                    leaks[(a, b)] = rng.uniform(*EXPERT_LEAK)
        out.append({"noise": rng.uniform(*EXPERT_NOISE), "gamma": rng.uniform(*EXPERT_GAMMA),
                    "leaks": leaks, "slip": rng.uniform(*EXPERT_SLIP),
                    "missing": rng.uniform(*EXPERT_MISSING)})
    return out


#: share of patches whose panel votes are drawn by systematic sampling (the experts' uniform
#: draws are a random permutation of evenly spaced points) instead of independently: the number
#: of dissenting votes then stays close to 11 x the perceived share (experts differ in how readily
#: they name a secondary LCZ, so a patch gets ~the same number of dissenters from any panel), as
#: in the real data, where one or two dissenting votes are far more common than a binomial
#: model with the same mean allows.
VOTE_STRATIFY = 0.45


def simulate_votes(rng: np.random.Generator, experts: list[dict], latent: dict) -> np.ndarray:
    """(n, 11) votes (LCZ ids, 0 = none) of the experts on the latent scenes."""
    comp, weight = latent["comp"], latent["weight"]
    n = comp.shape[0]
    rows = np.arange(n)
    n_exp = len(experts)
    votes = np.zeros((n, n_exp), dtype=np.int64)
    draws = None
    if VOTE_STRATIFY > 0:             # systematic sampling over the panel (see VOTE_STRATIFY)
        strat = rng.random(n) < VOTE_STRATIFY
        stratified = (rng.random((n, n_exp)).argsort(axis=1) + rng.random((n, 1))) / n_exp
        draws = np.where(strat[:, None], stratified, rng.random((n, n_exp)))
    for e, ex in enumerate(experts):
        per = np.clip(weight + rng.normal(0.0, ex["noise"], weight.shape) * (weight > 0), 1e-6, None)
        per = per ** ex["gamma"]
        mix = np.zeros((n, N_LCZ + 1))
        for j in range(3):
            np.add.at(mix, (rows, comp[:, j]), per[:, j])
        for (a, b), leak in ex["leaks"].items():
            moved = mix[:, a] * leak
            mix[:, a] -= moved
            mix[:, b] += moved
        mix /= mix.sum(axis=1, keepdims=True)
        u = rng.random((n, 1)) if draws is None else draws[:, e:e + 1]
        v = np.minimum((u > np.cumsum(mix, axis=1)).sum(axis=1), N_LCZ)
        slip = rng.random(n) < ex["slip"]
        for a in np.unique(v[slip]):
            idx = np.nonzero(slip & (v == a))[0]
            if int(a) in SLIPS:
                v[idx] = rng.choice(SLIPS[int(a)], size=idx.size)
        v[rng.random(n) < ex["missing"]] = 0
        votes[:, e] = v
    return votes


def original_labels(rng: np.random.Generator, latent: dict) -> np.ndarray:
    """(n,) original So2Sat labels: mostly the primary, the secondary when it covers a lot."""
    comp, weight = latent["comp"], latent["weight"]
    n = comp.shape[0]
    swap = (weight[:, 1] > 0.35) & (rng.random(n) < 0.5) | (rng.random(n) < 0.03)
    return np.where(swap, comp[:, 1], comp[:, 0])


def city_patches(rng: np.random.Generator, n: int, experts: list[dict], city: dict, addon: bool,
                 shares: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pixels (n,32,32,10) float32, labels ((n,12) cities, (n,11) addons) int16, latent."""
    latent = simulate_latent(rng, n, addon, shares)
    pixels = render_scene(rng, latent, city).astype(np.float32)
    votes = simulate_votes(rng, experts, latent)
    n_empty = int(rng.binomial(n, 0.002)) if not addon else 0
    votes[rng.choice(n, n_empty, replace=False)] = 0                # rows without any vote
    if addon:
        labels = votes
    else:
        labels = np.concatenate([votes, original_labels(rng, latent)[:, None]], axis=1)
    return pixels, labels.astype(np.int16), latent


def _city_key(city: str) -> int:
    return sum(ord(ch) * 31**i for i, ch in enumerate(city)) % (2**31)


def synthesize(out: Path, seed: int = 0, size: str = "small", progress: bool = True) -> dict:
    """Write the 18 cities' vote files of the twin into ``out``; returns {file name: rows}.

    All-or-nothing: the files are written under temporary names inside ``out`` and renamed into
    place once every one is complete (:func:`lczldl.fileio.atomic_paths`); on any error (a full
    disk included) the temporary files, and ``out`` itself when this call created it, are removed.
    The same seed gives the same files.
    """
    if size not in SIZES:
        raise DataError(f"unknown twin size '{size}', use one of {', '.join(SIZES)}")
    if not isinstance(seed, int) or seed < 0:
        raise DataError(f"twin seed must be an integer >= 0, got {seed!r}")
    out = Path(out)
    new_root = next((p for p in reversed([out.absolute(), *out.absolute().parents]) if not p.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    jobs = _twin_files()
    try:
        with atomic_paths([out / name for _, _, name in jobs]) as tmp:
            written = _write_twin([(city, addon, out / name, tmp[out / name]) for city, addon, name in jobs],
                                  seed, size, progress)
    except BaseException as exc:
        if new_root is not None:
            shutil.rmtree(new_root, ignore_errors=True)
        if isinstance(exc, OSError):
            raise os_error_at(exc, out) from exc
        raise
    return written


def _twin_files() -> list[tuple[str, bool, str]]:
    """(city, addon, file name) of every file of the twin, in the order they are written."""
    jobs = [(c, False) for c in EUROPEAN_CITIES] + [(c, True) for c in ADDON_CITIES]
    return [(city, addon, city_file_name(city, addon)) for city, addon in jobs]


def _write_twin(jobs: list[tuple[str, bool, Path, Path]], seed: int, size: str, progress: bool) -> dict[str, int]:
    """Write every city's file of the twin; ``jobs``: (city, addon, final path, path to write).
    Returns {file name: rows}."""
    from rich.progress import Progress

    n_city, n_addon = SIZES[size]
    experts = make_experts(np.random.default_rng([seed, 1]))
    written = {}
    with Progress(disable=not progress or size in ("tiny", "small"), transient=True) as bar:
        task = bar.add_task("synthesising twin", total=sum(n_addon if a else n_city for _, a, _, _ in jobs))
        for city, addon, final, path in jobs:
            rng = np.random.default_rng([seed, _city_key(city)])
            look = make_city(rng)
            shares = None if addon else rng.dirichlet(CITY_SHARES * 80 + 0.1)
            n = n_addon if addon else n_city
            name = final.name
            try:
                with h5py.File(path, "w") as f:
                    ds = f.create_dataset("sen2", shape=(n, PATCH_SIZE, PATCH_SIZE, len(BANDS)),
                                          dtype="float32", chunks=(min(n, 128), PATCH_SIZE, PATCH_SIZE, len(BANDS)))
                    labels = []
                    for start in range(0, n, CHUNK):
                        m = min(CHUNK, n - start)
                        px, lab, _ = city_patches(rng, m, experts, look, addon, shares)
                        ds[start:start + m] = px
                        labels.append(lab)
                        bar.advance(task, m)
                    f.create_dataset("label", data=np.concatenate(labels))
                    f.attrs["lczldl_synthetic_twin"] = f"seed={seed} size={size}"
            except OSError as exc:
                raise os_error_at(exc, final) from exc
            written[name] = n
    return written
