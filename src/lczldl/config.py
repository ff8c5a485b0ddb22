"""Validated configuration of lczldl (pydantic v2; unknown keys are errors) from YAML + ``--set``.

Top level :class:`LczldlConfig`, one section per concern:

- ``data``: how the prepared store is read (loader workers, pinned memory) and the vote budget of
  the training-side targets (``data.vote_budget``: k of each image's votes).
- ``model``: Sen2LCZ-Net's constructor (classes, bands, depth, width, dropout, fusion).
- ``train``: regime, optimiser, schedule, early stopping, devices, precision, logger.
- ``evaluation``: calibration bins, MC-dropout passes and the beyond-the-paper switches (conformal
  sets, sets calibrated on the votes, selective prediction).
- ``study``: the grid, workers, executor, how raw votes are prepared and SLURM job settings; read
  by ``lczldl study`` / ``lczldl demo`` (``lczldl train`` validates but ignores it, so one YAML
  serves both).
- ``maps``: how ``lczldl predict`` maps a Sentinel-2 scene (stride, MC dropout, temperature, chunk
  and batch sizes, cloud masking, a file's band order and radiometry); read by ``lczldl predict``
  only and never recorded in run or study folders (a map's predict.json records what it used).

Defaults (``lczldl/resources/default.yaml`` documents every key) reproduce the paper's protocol:
Nadam lr 0.002 halved every 5 epochs, batch 64, at most 300 epochs, early stopping on the
regime's validation loss with patience 20.

:func:`load_config` is the one place where settings are resolved, for every command: defaults
(the models below, the only place they are declared) <- YAML file <- ``--set key=value``
overrides <- the options the user typed (keyword updates; ``None`` = not given). What the user
typed therefore always wins over the file, and the file over the defaults. Any problem raises
:class:`lczldl.errors.ConfigError` with one line naming the key (or the CLI option, via ``flags``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lczldl.constants import (
    BANDS,
    CONFORMAL_LEVELS,
    MC_PASSES,
    N_BINS,
    N_EXPERTS,
    SOFT_AGGREGATORS,
    VOTE_BUDGET_MODES,
    VOTE_CONFORMAL_SAMPLES,
    VOTE_CONFORMAL_VARIANTS,
)
from lczldl.errors import ConfigError
from lczldl.regimes import PAPER_REGIMES, REGIMES

Regime = Literal[tuple(REGIMES)]  # the registered regimes' names (lczldl.regimes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: how a vote budget's k is written for "every vote" (k = None)
ALL_VOTES = "all"


def _budget_k(v: object) -> object:
    """One budget k: "all" (any case) -> None, a whole number -> int; anything else is left to the
    field's own validation."""
    if isinstance(v, str):
        t = v.strip().lower()
        return None if t == ALL_VOTES else (int(t) if t.isdigit() else v)
    return v


class _VoteDraw(_Strict):
    """How a vote budget picks each image's k votes (:mod:`lczldl.data.vote_budget`)."""

    mode: Literal[VOTE_BUDGET_MODES] = Field(VOTE_BUDGET_MODES[0], description=(  # type: ignore[valid-type]
        "random: k of each image's votes, drawn per image; panel: the same k experts (vote columns) for every image"))
    seed: int = Field(0, ge=0, description="seed of the draw: the same k votes for every regime and seed")


class VoteBudgetConfig(_VoteDraw):
    """``data.vote_budget``: every training-side target (train and validation: training, early
    stopping, temperature fitting, conformal calibration) built from k of each image's votes; test
    is always judged against all votes. k = None ("all") is the store as prepared."""

    k: int | None = Field(None, ge=1, le=N_EXPERTS, description="votes kept per image; null / all = every vote")

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, v: object) -> object:
        return _budget_k(v)


class VoteBudgetGrid(_VoteDraw):
    """``study.vote_budget``: the study's grid over k (``lczldl study --vote-budget 1,3,5,all``).
    Every k trains the study's regimes and seeds into STUDY/budget/k<k>/ with
    ``data.vote_budget`` = {k, mode, seed}; "all" is the study's own runs (always trained), so it
    is accepted and left out of ``k``. Empty: no budget grid."""

    k: list[int] = Field(default_factory=list, description="vote budgets k of the grid, e.g. [1, 3, 5]")

    @field_validator("k", mode="before")
    @classmethod
    def _ks(cls, v: object) -> object:
        """A comma list or list of k ("all" allowed) -> sorted whole numbers without repeats."""
        items = (split_list(v) or []) if isinstance(v, str) else ([] if v is None else v)
        if isinstance(items, int | str):
            items = [items]
        if not isinstance(items, list | tuple):
            return v
        ks = [_budget_k(x) for x in items]
        bad = [x for x in ks if x is not None and (isinstance(x, bool) or not isinstance(x, int)
                                                    or not 1 <= x <= N_EXPERTS)]
        if bad:
            raise ValueError(f"vote budgets must be whole numbers 1..{N_EXPERTS} or '{ALL_VOTES}', "
                             "e.g. 1,3,5,all")
        return sorted({x for x in ks if x is not None})


class DataConfig(_Strict):
    """Reading the prepared store, and which of its votes the training-side targets use."""

    num_workers: int = Field(0, ge=0)
    pin_memory: bool = False
    vote_budget: VoteBudgetConfig = Field(default_factory=VoteBudgetConfig)


class ModelConfig(_Strict):
    """Sen2LCZ-Net constructor arguments (``in_channels`` = number of bands)."""

    #: K: 10 (urban LCZ 1-10 of the vote release) or 17 (So2Sat LCZ42); a run takes its store's
    #: (lczldl.training.members.store_config), whatever is set here
    num_classes: Literal[10, 17] = 10
    bands: list[str] = Field(default_factory=lambda: list(BANDS), min_length=1)
    depth: int = Field(17, ge=5)
    width: int = Field(16, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    fusion: Literal["prob_mean", "logit_mean", "last"] = "prob_mean"

    @field_validator("bands")
    @classmethod
    def _known_bands(cls, v: list[str]) -> list[str]:
        bad = [b for b in v if b not in BANDS]
        if bad:
            raise ValueError(f"unknown band(s) {bad}; choose from {', '.join(BANDS)}")
        if len(set(v)) != len(v):
            raise ValueError("bands listed twice")
        return v

    @field_validator("depth")
    @classmethod
    def _depth(cls, v: int) -> int:
        if (v - 1) % 4:
            raise ValueError("depth must be 4*n+1 (5, 9, 13, 17, ...)")
        return v


class TrainConfig(_Strict):
    """One training run (the paper's defaults)."""

    regime: Regime = "onehot"
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    label_smoothing_compat17: bool = False
    lr: float = Field(0.002, gt=0.0)
    lr_decay: float = Field(0.5, gt=0.0, le=1.0)
    lr_step_epochs: int = Field(5, ge=1)
    nadam_momentum_decay: float = Field(0.004, ge=0.0)
    nadam_eps: float = Field(1e-7, gt=0.0)
    batch_size: int = Field(64, ge=1)
    max_epochs: int = Field(300, ge=1)
    patience: int = Field(20, ge=0)
    num_threads: int | None = Field(None, ge=1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = 1
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "fsdp"] = "auto"
    #: 32-true: fp32 with TF32 off; 32-tf32: fp32 tensors with TF32 convolutions / matmuls on CUDA;
    #: bf16-mixed / 16-mixed: autocast; 64-true: fp64 (docs/training.md, "Precision")
    precision: Literal["32-true", "32-tf32", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    channels_last: bool = True
    deterministic: bool = True
    logger: Literal["csv", "tensorboard", "mlflow"] = "csv"
    #: last.ckpt after an epoch only when this many epochs passed since the last one was written
    #: (and always after the run's final epoch); a resume repeats at most this many epochs
    last_checkpoint_epochs: int = Field(1, ge=1)
    #: ... and only when this many minutes passed since then (0: no time condition)
    last_checkpoint_minutes: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    #: training loop: auto (the packed engine on CUDA where the config allows it, else Lightning;
    #: ``lczldl.training.fastpath``) | lightning | packed
    engine: Literal["auto", "lightning", "packed"] = "auto"

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1 and v != -1:
            raise ValueError("devices must be >= 1, -1 (all) or 'auto'")
        return v


class EvaluationConfig(_Strict):
    """How runs are evaluated: calibration bins, MC dropout, and the beyond-the-paper metrics
    (conformal prediction sets, selective prediction and uncertainty signals; docs/metrics.md)."""

    n_bins: int = Field(N_BINS, ge=2)
    mc_passes: int = Field(MC_PASSES, ge=1)
    conformal: bool = Field(True, description="split-conformal sets (LAC, APS, RAPS) calibrated on val")
    selective: bool = Field(True, description="risk-coverage, AURC, accuracy at coverage, uncertainty signals")
    conformal_levels: list[float] = Field(default_factory=lambda: list(CONFORMAL_LEVELS), min_length=1)
    vote_conformal: bool = Field(True, description=(
        "with conformal: also sets calibrated on labels drawn from the validation votes (Monte Carlo conformal)"))
    vote_samples: int = Field(VOTE_CONFORMAL_SAMPLES, ge=1, description="labels drawn per validation image (m)")
    vote_variant: Literal[VOTE_CONFORMAL_VARIANTS] = Field(  # type: ignore[valid-type]
        VOTE_CONFORMAL_VARIANTS[0], description="ecdf: coverage guarantee at the level; average: 1 - 2 alpha for m > 1")

    @field_validator("conformal_levels", mode="before")
    @classmethod
    def _levels(cls, v: object) -> object:
        """A comma list or list of coverage levels in (0, 1) -> sorted, without repeats."""
        items = (split_list(v) or []) if isinstance(v, str) else v
        if isinstance(items, float | int):
            items = [items]
        if not isinstance(items, list | tuple):
            return v
        try:
            levels = sorted({float(x) for x in items})
        except (TypeError, ValueError):
            raise ValueError(f"{v!r}: coverage levels must be numbers, e.g. 0.9,0.95") from None
        if not levels or any(not 0.0 < x < 1.0 for x in levels):
            raise ValueError(f"{v!r}: coverage levels must lie in (0, 1), e.g. 0.9,0.95")
        return levels


class SlurmConfig(_Strict):
    """SLURM job parameters for ``--executor slurm`` (one job per unit)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_min: int = Field(24 * 60, ge=1, description="wall-time limit per unit job, minutes")
    gpus_per_node: int | None = Field(1, ge=0)
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: int | None = Field(32, ge=1)
    max_parallel: int = Field(64, ge=1, description="jobs in flight at once")
    setup: list[str] = Field(default_factory=list, description="shell lines before each job")


class PrepareConfig(_Strict):
    """How raw vote files are prepared into a store: ``lczldl data prepare`` and the ``study.prepare``
    section (raw votes given to ``lczldl study --data``). The one declaration of prepare's defaults."""

    split: Literal["authors", "random", "cities"] = "authors"
    seed: int = Field(42, ge=0, description="seed of the random / held-out split")
    train_cities: list[str] | None = None
    val_cities: list[str] | None = None
    test_cities: list[str] | None = None
    smoothing: float = Field(0.0, ge=0.0, allow_inf_nan=False,
                             description="a of the stored distribution (c + a) / (n (1 + a))")
    drop_nonfinite: bool = False
    aggregators: list[str] = Field(default_factory=list, description=(
        "crowd-kit posteriors written as soft targets agg_<method> (one_coin, glad, mace, wawa; "
        "needs crowd-kit; GLAD is slow on large stores)"))

    @field_validator("train_cities", "val_cities", "test_cities", mode="before")
    @classmethod
    def _city_list(cls, v: object) -> object:
        return split_list(v) if isinstance(v, str) else v

    @field_validator("aggregators", mode="before")
    @classmethod
    def _aggregators(cls, v: object) -> object:
        """A comma list or list of aggregator names -> the known ones in canonical order (the same
        store whatever order they were typed in); an unknown name is an error."""
        names = (split_list(v) or []) if isinstance(v, str) else ([] if v is None else v)
        if not isinstance(names, list | tuple):
            return v
        bad = [str(n) for n in names if n not in SOFT_AGGREGATORS]
        if bad:
            raise ValueError(f"unknown aggregator {', '.join(bad)}; choose from {', '.join(SOFT_AGGREGATORS)}")
        return [m for m in SOFT_AGGREGATORS if m in names]


_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def split_list(text: str) -> list[str] | None:
    """``"a, b,"`` -> ["a", "b"]; an empty text -> None (not given)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def parse_seeds(text: str | int | Iterable[int]) -> list[int]:
    """``"0-4"`` -> [0..4], ``"0,2"`` -> [0, 2], ``"0-2,7"`` -> [0, 1, 2, 7]; order kept, no repeats.

    Raises ValueError (the config models turn it into a ConfigError naming the key or option)."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a seed; write e.g. 0-4 or 0,1,2")
    if isinstance(text, int):
        items: list[int] = [text]
    elif isinstance(text, str):
        items = []
        parts = text.split(",")
        if not text.strip() or any(not p.strip() for p in parts):
            raise ValueError(f"{text!r} has an empty item; write e.g. 0-4 or 0,1,2")
        for p in parts:
            m = _RANGE.match(p)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ValueError(f"range {p.strip()} runs backwards; write e.g. 0-4")
                items.extend(range(lo, hi + 1))
            elif p.strip().isdigit():
                items.append(int(p.strip()))
            else:
                raise ValueError(f"{p.strip()!r} is not a seed or range; write e.g. 0-4 or 0,1,2")
    else:
        items = [int(x) for x in text]
    if any(s < 0 for s in items):
        raise ValueError("seeds must be >= 0")
    if not items:
        raise ValueError("no seed given; write e.g. 0-4 or 0,1,2")
    return list(dict.fromkeys(items))


def parse_regimes(text: str | Iterable[str]) -> list[str]:
    """Comma list (or list) of regime names -> list without repeats; unknown or none raise ValueError."""
    names = [str(t).strip() for t in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"no regime given; choose from {', '.join(REGIMES)}")
    bad = [n for n in names if n not in REGIMES]
    if bad:
        raise ValueError(f"unknown {', '.join(bad)}; choose from {', '.join(REGIMES)}")
    return list(dict.fromkeys(names))


class StudyConfig(_Strict):
    """The ``study:`` section: the grid, workers, executor, pack size, prepare and SLURM settings, the
    vote-budget grid (``lczldl study`` / ``lczldl demo``; the CLI options --regimes, --seeds,
    --workers, --executor, --pack, --vote-budget win)."""

    regimes: list[str] = Field(default_factory=lambda: list(PAPER_REGIMES))
    seeds: list[int] = Field(default_factory=lambda: list(range(5)))
    workers: int = Field(1, ge=1)
    executor: Literal["local", "slurm", "submitit-local"] = "local"
    intervals: bool = Field(False, description="report tables show mean [lo, hi] (95 %) instead of mean ± std")
    figures_pdf: bool = Field(True, description=(
        "figures also as PDF (fonts embedded as TrueType, for papers) beside the PNGs the report shows; "
        "false: PNG only, about 2.5x faster to draw"))
    #: runs per pack (one process training them together); None = automatic (lczldl.study.packs)
    pack: int | None = Field(None, ge=1)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    #: the grid over the vote budget k (opt-in; docs/study.md)
    vote_budget: VoteBudgetGrid = Field(default_factory=VoteBudgetGrid)

    @field_validator("regimes", mode="before")
    @classmethod
    def _regimes(cls, v: object) -> object:
        return list(PAPER_REGIMES) if v is None else parse_regimes(v)  # type: ignore[arg-type]

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: object) -> object:
        return parse_seeds(v)  # type: ignore[arg-type]


def _word_or_number(v: object, word: str) -> str | float | None:
    """``word`` when ``v`` is that word (any case, spaces around), else ``v`` as a float (numbers
    also as text); None when it is neither (booleans included), for the validator to refuse."""
    if isinstance(v, str) and v.strip().lower() == word:
        return word
    if isinstance(v, bool):
        return None
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class MapsConfig(_Strict):
    """The ``maps:`` section: how ``lczldl predict`` maps a scene (docs/maps.md). Each setting's
    range is checked here; what depends on the scene or the other arguments is checked by
    ``lczldl.maps.predict.check_map_arguments``."""

    stride: int = Field(10, ge=1, description="window stride in scene pixels (10 px = 100 m output pixels)")
    mc_passes: int = Field(0, ge=0, description="MC-dropout passes (0 = off)")
    temperature: float | Literal["auto"] = Field(1.0, description=(
        "divides each model's log-probabilities; auto = the run's metrics_ts.json"))
    batch_size: int = Field(256, ge=1, description="windows per forward pass")
    block_rows: int | None = Field(None, ge=1, description="output rows per chunk (null: about 256 scene px)")
    block_cols: int | None = Field(None, ge=1, description="output columns per chunk (null: about 256 scene px)")
    cloud_classes: list[int] = Field(default_factory=lambda: [1, 3, 8, 9, 10], description=(
        "L2A SCL classes masked: 1 saturated or defective, 3 cloud shadow, 8 / 9 cloud medium / high "
        "probability, 10 thin cirrus; [] (none) turns every cloud mask off, L1C's MSK_CLASSI too"))
    max_cloud_share: float = Field(0.05, ge=0.0, le=1.0, description=(
        "a 32 x 32 window with a larger share of masked pixels is no data: 0.05 = 51 of 1024 px, about "
        "half a 10 x 10 px output cell, so a fully masked cell always drops its window while a few "
        "isolated flags (SCL marks some bright roofs) do not"))
    bands: list[str] | None = Field(None, description="band order of a stacked GeoTIFF (null: So2Sat's)")
    scale: float | None = Field(None, gt=0.0, allow_inf_nan=False, description=(
        "files without product metadata: reflectance = (value + offset) / scale"))
    offset: float | None = Field(None, allow_inf_nan=False, description=(
        "files without product metadata: additive offset (null: 0)"))
    filter_sigma_m: float | Literal["published"] = Field("published", description=(
        "Gaussian filter of lcz_filter: 'published' = the class-specific kernels of the LCZ Generator "
        "and the global LCZ map (sigma 25-250 m, Demuzere et al. 2020), or one sigma in metres for "
        "every class (kernel radius 2 sigma; 0 = no smoothing)"))
    conformal_set: str | None = Field("lac_90", description=(
        "the conformal set (score_level, e.g. lac_90, aps_95) whose threshold, when a single model "
        "file carries it (lczldl export-weights), gives uncertainty.tif its set_size band; null: none"))
    allow_resolution: bool = Field(False, description=(
        "map bands whose pixel size is not Sentinel-2's (10 m B02 B03 B04 B08, 20 m B05 B06 B07 B8A "
        "B11 B12; a stacked GeoTIFF 10 m) instead of refusing them"))

    @field_validator("conformal_set", mode="before")
    @classmethod
    def _conformal_set(cls, v: object) -> object:
        """``none`` (any case) turns the set_size band off."""
        return None if isinstance(v, str) and v.strip().lower() in ("none", "") else v

    @field_validator("temperature", mode="before")
    @classmethod
    def _temperature(cls, v: object) -> object:
        """``auto`` (any case) or a positive finite number (also as text)."""
        v = _word_or_number(v, "auto")
        if v != "auto" and not (isinstance(v, float) and math.isfinite(v) and v > 0):
            raise ValueError("must be 'auto' or a positive number")
        return v

    @field_validator("filter_sigma_m", mode="before")
    @classmethod
    def _filter_sigma(cls, v: object) -> object:
        """``published`` (any case) or a finite number >= 0 (also as text)."""
        v = _word_or_number(v, "published")
        if v != "published" and not (isinstance(v, float) and math.isfinite(v) and v >= 0):
            raise ValueError("must be 'published' or a number of metres >= 0")
        return v

    @field_validator("cloud_classes", mode="before")
    @classmethod
    def _classes(cls, v: object) -> object:
        """A comma list of class numbers; ``none`` or an empty text -> []."""
        if not isinstance(v, str):
            return v
        if v.strip().lower() in ("", "none"):
            return []
        try:
            return [int(t) for t in split_list(v) or []]
        except ValueError:
            raise ValueError("must be SCL class numbers like 1,3,8,9,10 or 'none'") from None

    @field_validator("bands", mode="before")
    @classmethod
    def _bands(cls, v: object) -> object:
        return split_list(v) if isinstance(v, str) else v


class LczldlConfig(_Strict):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    #: read by ``lczldl study`` / ``lczldl demo`` only
    study: StudyConfig | None = None
    #: read by ``lczldl predict`` only; left out of every dump (run and study folders)
    maps: MapsConfig = Field(default_factory=MapsConfig, exclude=True)


def _format_error(exc: ValidationError, source: str, flags: Mapping[str, str] | None = None) -> str:
    """One line for the first validation error: the CLI option when the user typed the value
    (``flags`` maps dotted keys to option names), else the config key and ``source``."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown config key '{key}' (see lczldl/resources/default.yaml for the keys)"
    msg = err["msg"].replace("\n", " ").removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "expected")
    msg = msg.replace("Input should be", "must be")
    flag = (flags or {}).get(key) or (flags or {}).get(key.rsplit(".", 1)[0])
    if flag:
        return f"{flag} {_shown(err.get('input'))}: {msg}"
    return f"{source}: config key '{key}': {msg} (got {err.get('input')!r})"


def _shown(value: Any) -> str:
    """A typed value as the user wrote it (lists back to comma lists)."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_override(item: str) -> tuple[list[str], object]:
    """``train.lr=0.001`` -> (["train", "lr"], 0.001); the value is parsed as YAML."""
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set '{item}': expected section.key=value, e.g. train.lr=0.001")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")) or "." not in key:
        raise ConfigError(f"--set '{item}': expected section.key=value, e.g. train.lr=0.001")
    try:
        parsed = yaml.safe_load(value) if value.strip() != "" else None
    except yaml.YAMLError:
        raise ConfigError(f"--set '{item}': value is not valid YAML") from None
    return key.split("."), parsed


def read_yaml(path: Path) -> dict:
    """Read a YAML config file into a mapping; one-line ConfigError when missing or malformed."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of sections (data, model, train, ...)")
    return data


def merge_items(data: dict, items: list[tuple[list[str], object]]) -> dict:
    """Set nested keys (``(["train", "lr"], 0.001)``) in a copy of ``data``."""
    import copy

    data = copy.deepcopy(data)
    for keys, value in items:
        node = data
        for i, k in enumerate(keys[:-1]):
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"config key '{'.'.join(keys)}': '{'.'.join(keys[:i + 1])}' is not a section")
            node = nxt
        node[keys[-1]] = value
    return data


def load_config(path: Path | None = None, overrides: list[str] | None = None, *,
                flags: Mapping[str, str] | None = None, **updates: object) -> LczldlConfig:
    """Defaults <- YAML ``path`` <- ``--set`` ``overrides`` <- keyword ``updates``: the one resolver.

    ``updates`` use dotted keys through a dict, e.g. ``load_config(None, None,
    **{"train.regime": "dist"})``; None values are ignored (an option the user did not give).
    ``flags`` maps dotted keys to the CLI options they came from, so a bad value is reported as
    ``--workers 0: ...`` rather than as a config key.
    """
    source = "config"
    data: dict = {}
    if path is not None:
        path = Path(path)
        source = str(path)
        data = read_yaml(path)
    items = [parse_override(o) for o in overrides or []]
    given = [(k.split("."), v) for k, v in updates.items() if v is not None]
    return validate_config(merge_items(data, items + given), source,
                           {k: f for k, f in (flags or {}).items() if updates.get(k) is not None})


def validate_config(data: dict, source: str = "config", flags: Mapping[str, str] | None = None) -> LczldlConfig:
    """Validate a config mapping (sections as in the YAML); ``source`` names it in errors."""
    try:
        return LczldlConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source, flags)) from None


def run_sections(cfg: LczldlConfig) -> dict[str, Any]:
    """The sections a training run records (every section but ``study``), as JSON-able values."""
    return cfg.model_dump(mode="json", exclude={"study"})


def dump_config(cfg: LczldlConfig) -> str:
    """The resolved config as YAML (every key, defaults filled; ``study`` left out when unset)."""
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=False,
                                         exclude={"study"} if cfg.study is None else None),
                          sort_keys=False)


def default_config_text() -> str:
    """The documented default config shipped with the package."""
    from importlib import resources

    return resources.files("lczldl").joinpath("resources/default.yaml").read_text()
