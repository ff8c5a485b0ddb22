"""Fixed facts of So2Sat LCZ42 and of the study (see ../shared/docs/PROTOCOL.md).

Conventions used everywhere in lczldl:
- LCZ ids are 1..17 (as in the raw vote files; 0 = no vote).
- Class *indices* are 0-based: index i <-> LCZ id i + 1. The study uses the 10 urban
  classes, indices 0..9 <-> LCZ 1..10.
- Pixels are reflectance (digital number / 10000), bands in So2Sat order (BANDS).
"""

from __future__ import annotations

#: Sentinel-2 bands of So2Sat LCZ42 in file order, TorchGeo names.
BANDS: tuple[str, ...] = (
    "S2_B02", "S2_B03", "S2_B04", "S2_B05", "S2_B06",
    "S2_B07", "S2_B08", "S2_B8A", "S2_B11", "S2_B12",
)
PATCH_SIZE = 32
#: reflectance = digital number / REFLECTANCE_SCALE (So2Sat patches, the store's uint16 pixels, the
#: default quantification of Sentinel-2 products)
REFLECTANCE_SCALE = 10000.0
N_LCZ = 17
N_URBAN = 10
N_EXPERTS = 11
#: crowd-kit label aggregators whose posteriors ``lczldl data prepare --aggregators`` writes into the
#: store as soft targets (what each assumes: docs/beyond_the_paper.md), in canonical order
SOFT_AGGREGATORS: tuple[str, ...] = ("one_coin", "glad", "mace", "wawa")
#: store column and training target of each aggregator's posterior
AGG_TARGETS: dict[str, str] = {m: f"agg_{m}" for m in SOFT_AGGREGATORS}
#: training target: one-hot of the aggregated label (argmax of the posterior, ties to the lower class)
AGG_ONEHOT_TARGETS: dict[str, str] = {m: f"agg_{m}_onehot" for m in SOFT_AGGREGATORS}
#: coverage levels 1 - alpha of the conformal prediction sets evaluated by default
#: (``evaluation.conformal_levels``)
CONFORMAL_LEVELS: tuple[float, ...] = (0.9, 0.95)
#: calibration variants of the sets calibrated on the votes (lczldl.evaluation.conformal_votes), the
#: default first: "ecdf" (coverage guarantee at the level) and "average" (``evaluation.vote_variant``)
VOTE_CONFORMAL_VARIANTS: tuple[str, ...] = ("ecdf", "average")
#: labels drawn per calibration image for those sets (Stutz et al.'s default ``num_samples``;
#: ``evaluation.vote_samples``)
VOTE_CONFORMAL_SAMPLES = 10
#: how a vote budget picks each image's k votes (lczldl.data.vote_budget): "random" (k of its votes)
#: or "panel" (the same k experts for every image)
VOTE_BUDGET_MODES: tuple[str, ...] = ("random", "panel")
#: mixes a seed with a counter (epoch, tile, pass) into one torch seed: seed * SEED_MIXER + counter;
#: a prime above any counter, so different (seed, counter) pairs give different seeds
SEED_MIXER = 1_000_003

#: Short LCZ names, index 0 <-> LCZ 1 (A..G are 11..17).
LCZ_NAMES: tuple[str, ...] = (
    "Compact high-rise", "Compact mid-rise", "Compact low-rise", "Open high-rise",
    "Open mid-rise", "Open low-rise", "Lightweight low-rise", "Large low-rise",
    "Sparsely built", "Heavy industry", "Dense trees", "Scattered trees", "Bush, scrub",
    "Low plants", "Bare rock or paved", "Bare soil or sand", "Water",
)
LCZ_CODES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
                              "A", "B", "C", "D", "E", "F", "G")

#: Standard LCZ colour scheme (Stewart & Oke / WUDAPT), index 0 <-> LCZ 1.
LCZ_COLORS: tuple[str, ...] = (
    "#8c0000", "#d10000", "#ff0000", "#bf4d00", "#ff6600", "#ff9955", "#faee05",
    "#bcbcbc", "#ffccaa", "#555555", "#006a00", "#00aa00", "#648525", "#b9db79",
    "#000000", "#fbf7ae", "#6a6aff",
)

#: Cities of the label-evaluation release.
EUROPEAN_CITIES: tuple[str, ...] = (
    "amsterdam", "berlin", "cologne", "london", "madrid", "milan", "munich", "paris",
    "rome", "zurich",
)
ADDON_CITIES: tuple[str, ...] = (
    "guangzhou", "islamabad", "jakarta", "losangeles", "moscow", "mumbai", "nairobi",
    "riodejaneiro",
)
ALL_CITIES: tuple[str, ...] = EUROPEAN_CITIES + ADDON_CITIES
#: Ground truth of every addon image (LCZ id).
ADDON_LABEL = 7

#: The authors' "sophisticated" split: train cities; the rest form a pool split 50/50
#: at random (numpy seed 42) into validation and test.
AUTHORS_TRAIN_CITIES: tuple[str, ...] = (
    "amsterdam", "berlin", "cologne", "london", "milan", "rome",
    "guangzhou", "islamabad", "jakarta", "nairobi",
)
AUTHORS_HELDOUT_CITIES: tuple[str, ...] = (
    "madrid", "munich", "paris", "zurich", "losangeles", "moscow", "mumbai", "riodejaneiro",
)
AUTHORS_SPLIT_SEED = 42

#: Per-band means of So2Sat LCZ42 v2 sen2 (TorchGeo's table), reflectance.
SO2SAT_V2_MEANS: tuple[float, ...] = (
    0.1238, 0.1093, 0.1011, 0.1142, 0.1593, 0.1815, 0.1746, 0.1950, 0.1543, 0.1091,
)

#: Default number of equal-width confidence bins of the calibration metrics (the seed's 20;
#: ``evaluation.n_bins`` in the config).
N_BINS = 20
#: Default MC-dropout passes (the seed's 20; ``evaluation.mc_passes`` in the config).
MC_PASSES = 20
