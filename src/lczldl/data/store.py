"""Owns reading the prepared store: validated arrays and a lazy dataset of dict samples.

Images are read with :class:`lczldl.data.image_file.ImageFile` (``os.preadv``, no mmap: resident
memory stays flat over an epoch; re-exported here), converted from uint16 to float32 reflectance in
one vectorised step per batch. The small per-row arrays (labels, distributions, ...) are
memory-mapped.

A store without votes (So2Sat LCZ42: manifest ``"votes": false``, ``"classes"`` 1..17) has no vote
columns (:data:`VOTE_COLUMNS`; None in :class:`SplitArrays`) and serves the one-hot targets only;
:func:`require_votes` refuses the regimes that need votes. K, the number of classes, is the
manifest's ``classes`` (10 urban for a store written before the key existed).

No normalisation happens here: images are reflectance (DN / REFLECTANCE_SCALE); the model scales its inputs.
This module imports numpy only; torch is imported when a sample is built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lczldl.constants import (
    AGG_ONEHOT_TARGETS,
    AGG_TARGETS,
    BANDS,
    N_EXPERTS,
    N_URBAN,
    REFLECTANCE_SCALE,
)
from lczldl.data.image_file import ImageFile
from lczldl.data.labels import one_hot, smooth_distribution, smooth_one_hot
from lczldl.errors import DataError
from lczldl.layout import IMAGE, MANIFEST, STORE_FORMAT, STORE_VERSION, array_path, manifest_path, split_dir
from lczldl.regimes import LABEL_TARGETS, label_only_regimes, vote_regimes

#: Targets a dataset can serve (regime training / validation targets); the aggregators' (``agg_*``)
#: only from a store prepared with them (``--aggregators``).
TARGETS = ("onehot", "onehot_ls", "onehot_ls17", "distribution", "distribution_ls", "dawid_skene",
           *AGG_TARGETS.values(), *AGG_ONEHOT_TARGETS.values())
TARGET_ALIASES = {"dist": "distribution", "dist_ls": "distribution_ls"}
#: the targets the label rules rebuild from k votes per image under a vote budget
#: (:mod:`lczldl.data.budget_store`); the others (Dawid-Skene, crowd-kit posteriors) are fitted on
#: every vote of the store and are refused under a budget
BUDGET_TARGETS: tuple[str, ...] = ("onehot", "onehot_ls", "onehot_ls17", "distribution", "distribution_ls")
#: Per-row arrays of a split: name -> (trailing shape, dtype kind). Required in every store.
COLUMNS = {"label": ((), "i")}
#: Per-row arrays of the expert votes and what comes from them: required in a store with votes (the
#: label-evaluation release, its twin), absent from a store without (manifest ``"votes": false``,
#: So2Sat LCZ42), whose SplitArrays hold None for them.
VOTE_COLUMNS = {
    "distribution": ((N_URBAN,), "f"), "dawid_skene": ((N_URBAN,), "f"),
    "votes": ((N_EXPERTS,), "i"), "original": ((), "i"), "city": ((), "i"), "vote_entropy": ((), "f"),
}
#: Per-row arrays a store may lack: name -> (trailing shape, dtype kind). ``row`` (hand-made fixture
#: stores omit it) and the crowd-kit posteriors ``agg_<method>`` (only with ``--aggregators``).
OPTIONAL_COLUMNS = {"row": ((), "i"), **{c: ((N_URBAN,), "f") for c in AGG_TARGETS.values()}}


def manifest_has_votes(manifest: dict) -> bool:
    """Whether a store holds expert votes: its manifest's ``votes`` (stores written before the key
    existed were all prepared from votes: True)."""
    return bool(manifest.get("votes", True))


def manifest_classes(manifest: dict) -> list[int]:
    """The LCZ ids of a store's classes, class index i <-> ``classes[i]``: its manifest's ``classes``
    (1..10 for a store written before the key existed: the urban classes of the vote release)."""
    classes = manifest.get("classes")
    return [int(c) for c in classes] if classes else list(range(1, N_URBAN + 1))


def read_manifest(path: Path) -> dict:
    """The manifest of the store folder ``path`` as a dict (no other check); DataError (one line)
    when it is missing or not a JSON object."""
    mpath = manifest_path(path)
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{mpath}: missing or unreadable store manifest ({exc}); prepare the store again") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{mpath}: not an lczldl store manifest; prepare the store again")
    return manifest


def is_prepared_store(path: Path) -> bool:
    """True if ``path`` holds the manifest of an lczldl store (format tag checked, nothing else)."""
    m = manifest_path(path)
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text()).get("format") == STORE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class SplitArrays:
    """One split of a store. ``image`` is read lazily; the other arrays are memory-mapped."""

    name: str
    n: int
    image: ImageFile
    label: np.ndarray          # (N,) int64 class index 0..K-1
    # The vote columns (VOTE_COLUMNS): None in a store without votes (So2Sat LCZ42).
    distribution: np.ndarray | None = None   # (N, 10) float32 urban vote distribution
    dawid_skene: np.ndarray | None = None    # (N, 10) float32 Dawid-Skene posterior
    votes: np.ndarray | None = None          # (N, 11) int8 LCZ ids, column = expert
    original: np.ndarray | None = None       # (N,) int8 original So2Sat LCZ id
    city: np.ndarray | None = None           # (N,) int16 index into manifest["cities"]
    vote_entropy: np.ndarray | None = None   # (N,) float32 nats
    row: np.ndarray | None = None  # (N,) int64 row in the city's (or So2Sat split's) raw file
    #: store column "agg_<method>" -> (N, 10) float32 crowd-kit posterior (those the store holds)
    aggregated: dict[str, np.ndarray] = field(default_factory=dict)
    #: K, the number of classes (the store's manifest ``classes``): 10 urban, 17 for So2Sat LCZ42
    num_classes: int = N_URBAN
    #: a split built from k votes per image (:func:`lczldl.data.budget_store.budget_split`): the draw
    #: and its counts; None = every vote
    budget: dict | None = None

    @property
    def has_votes(self) -> bool:
        """Whether the split holds the expert votes (and the targets made from them)."""
        return self.distribution is not None

    def soft_targets(self) -> dict[str, np.ndarray]:
        """Every soft target the split holds, by name: distribution, dawid_skene, agg_* ((N, 10) each);
        none in a split without votes."""
        if not self.has_votes:
            return {}
        return {"distribution": self.distribution, "dawid_skene": self.dawid_skene, **self.aggregated}


class Store:
    """A prepared store: ``manifest`` plus per-split arrays (:meth:`split`)."""

    #: the vote budget its training-side splits are built from (a
    #: :class:`lczldl.data.budget_store.BudgetedStore`); None: every vote
    budget = None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        mpath = manifest_path(self.path)
        if not mpath.is_file():
            raise DataError(f"{self.path}: not a prepared store (no {MANIFEST}); "
                            "create one with `lczldl data prepare --raw RAW --out STORE`")
        try:
            self.manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{mpath}: manifest is not valid JSON ({exc}); prepare the store again") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != STORE_FORMAT:
            raise DataError(f"{mpath}: not an lczldl store manifest (format != '{STORE_FORMAT}')")
        if self.manifest.get("version") != STORE_VERSION:
            raise DataError(f"{mpath}: store version {self.manifest.get('version')} is not supported "
                            f"(expected {STORE_VERSION}); prepare the store again with this lczldl")
        if not isinstance(self.manifest.get("splits"), dict):
            raise DataError(f"{mpath}: manifest has no 'splits'; prepare the store again")
        self._splits: dict[str, SplitArrays] = {}

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    @property
    def cities(self) -> list[str]:
        return list(self.manifest.get("cities", []))

    @property
    def has_votes(self) -> bool:
        """Whether the store holds expert votes (:func:`manifest_has_votes`)."""
        return manifest_has_votes(self.manifest)

    @property
    def classes(self) -> list[int]:
        """LCZ id of each class index (:func:`manifest_classes`)."""
        return manifest_classes(self.manifest)

    @property
    def num_classes(self) -> int:
        """K: 10 (urban LCZ 1-10, the vote release) or 17 (So2Sat LCZ42)."""
        return len(self.classes)

    def _column(self, split: str, name: str, n: int, tail: tuple[int, ...], kind: str) -> np.ndarray:
        """One per-row array of a split, memory-mapped and checked against the manifest's row count."""
        f = array_path(self.path, split, name)
        try:
            arr = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{f}: missing or unreadable array of the store ({exc}); "
                            "prepare the store again") from None
        if arr.shape != (n,) + tail or arr.dtype.kind != kind:
            raise DataError(f"{f}: shape {arr.shape} dtype {arr.dtype}, expected {(n,) + tail} "
                            f"({'int' if kind == 'i' else 'float'}) from manifest; prepare the store again")
        return arr

    def split(self, name: str) -> SplitArrays:
        """Validated arrays of split ``name`` (train / val / test)."""
        if name in self._splits:
            return self._splits[name]
        d = split_dir(self.path, name)
        if name not in self.manifest["splits"] or not d.is_dir():
            raise DataError(f"{self.path}: no split '{name}' in the store (has: {', '.join(self.splits)})")
        n = self.manifest["splits"][name].get("n")
        required = {**COLUMNS, **(VOTE_COLUMNS if self.has_votes else {})}
        cols = {c: self._column(name, c, n, tail, kind) for c, (tail, kind) in required.items()}
        for c, (tail, kind) in OPTIONAL_COLUMNS.items():
            if array_path(self.path, name, c).is_file():
                cols[c] = self._column(name, c, n, tail, kind)
        agg = {c: cols.pop(c) for c in AGG_TARGETS.values() if c in cols}
        image = ImageFile(array_path(self.path, name, IMAGE))
        if image.shape[0] != n or image.shape[1] != len(BANDS):
            raise DataError(f"{image.path}: shape {image.shape}, expected ({n}, {len(BANDS)}, 32, 32)")
        k = self.num_classes
        if n and (int(np.min(cols["label"])) < 0 or int(np.max(cols["label"])) >= k):
            raise DataError(f"{array_path(self.path, name, 'label')}: class indices outside 0..{k - 1} "
                            f"(the manifest's {k} classes); prepare the store again")
        self._splits[name] = SplitArrays(name=name, n=int(n), image=image, aggregated=agg, num_classes=k, **cols)
        return self._splits[name]


def open_store(path: Path) -> Store:
    """Open a prepared store; a folder that is not one raises DataError saying how to make it."""
    return Store(Path(path))


def band_indices(bands: Sequence[str] | None) -> list[int]:
    """TorchGeo band names (S2_B02 ...) -> indices into the store's 10 bands (None = all)."""
    if bands is None:
        return list(range(len(BANDS)))
    if isinstance(bands, str):
        bands = [bands]
    if not len(bands):
        raise DataError(f"empty band selection; choose from {', '.join(BANDS)}")
    idx = []
    for b in bands:
        if b not in BANDS:
            raise DataError(f"unknown band '{b}'; available: {', '.join(BANDS)}")
        idx.append(BANDS.index(b))
    return idx


def _aggregator_of(target: str) -> str | None:
    """The aggregator behind an ``agg_*`` target (posterior or its one-hot label), else None."""
    for m in AGG_TARGETS:
        if target in (AGG_TARGETS[m], AGG_ONEHOT_TARGETS[m]):
            return m
    return None


def require_target(arrays: SplitArrays, target: str, where: str = "store") -> None:
    """DataError (one line, how to get it) when the split cannot serve ``target``: an ``agg_*``
    target of an aggregator the store was not prepared with, or on a split built from a vote budget
    a target outside :data:`BUDGET_TARGETS` (fitted on every vote)."""
    name = TARGET_ALIASES.get(target, target)
    if arrays.budget is not None and name in TARGETS and name not in BUDGET_TARGETS:
        raise DataError(f"{where}: target '{name}' cannot be built from a vote budget (k = "
                        f"{arrays.budget.get('k')}, split {arrays.name}): it is fitted on every vote; a budget "
                        f"serves {', '.join(BUDGET_TARGETS)} (set data.vote_budget.k to null or choose those regimes)")
    m = _aggregator_of(name)
    if m is not None and AGG_TARGETS[m] not in arrays.aggregated:
        raise DataError(f"{where}: no {AGG_TARGETS[m]} target in the store (split {arrays.name}); prepare "
                        f"with aggregators={m} (lczldl data prepare, or study.prepare.aggregators)",
                        params=("aggregators",))


def require_votes(store: Path | Store, regimes: Sequence[str], key: str = "train.regime") -> None:
    """DataError (one line naming the regimes that apply) when ``store`` (a folder or an open store)
    has no expert votes and one of ``regimes`` needs them (:attr:`lczldl.regimes.Regime.needs_votes`);
    ``key`` names the setting that chose them. Only a folder's manifest is read, and only when a
    regime needs votes."""
    need = vote_regimes(list(regimes))
    if not need:
        return
    path = store.path if isinstance(store, Store) else Path(store)
    if manifest_has_votes(store.manifest if isinstance(store, Store) else read_manifest(path)):
        return
    raise DataError(f"{path}: {key}={','.join(need)} needs expert votes, which this store has none of "
                    f"(one label per image, e.g. So2Sat LCZ42); use {', '.join(label_only_regimes())}",
                    params=(key,))


def aggregators_needed(targets: Sequence[str]) -> list[str]:
    """The crowd-kit aggregators whose posteriors ``targets`` need (``agg_*`` targets), in order."""
    found = [_aggregator_of(TARGET_ALIASES.get(t, t)) for t in targets]
    return [m for m in AGG_TARGETS if m in found]


def require_targets(store: Path | Store, targets: Sequence[str]) -> None:
    """:func:`require_target` on the train split of ``store`` (a folder or an open store) for each
    of ``targets``; a folder is opened only when one of them is an aggregator's (the others every
    store serves without a budget)."""
    budgeted = isinstance(store, Store) and store.budget is not None
    need = [t for t in targets if _aggregator_of(TARGET_ALIASES.get(t, t)) is not None or budgeted]
    if need:
        opened = store if isinstance(store, Store) else open_store(store)
        arrays = opened.split("train")
        for t in need:
            require_target(arrays, t, str(opened.path))


def make_targets(arrays: SplitArrays, target: str, eps: float = 0.1) -> np.ndarray:
    """(N, K) float32 target of a regime for one split (K = ``arrays.num_classes``; of a budget split:
    from its k-vote labels and distribution, the targets outside :data:`BUDGET_TARGETS` refused).

    onehot | onehot_ls (1-eps) y + eps/K | onehot_ls17 (the seed's 17-column quirk; with K = 17 the
    same as onehot_ls) | distribution | distribution_ls (1-eps) d + eps/10 | dawid_skene |
    agg_<method> (crowd-kit posterior) | agg_<method>_onehot (one-hot of its argmax, ties to the
    lower class). The targets from votes are a DataError on a split without votes.
    """
    target = TARGET_ALIASES.get(target, target)
    k = int(arrays.num_classes)
    if target in TARGETS and target not in LABEL_TARGETS and not arrays.has_votes:
        raise DataError(f"target {target} needs expert votes, which this store has none of (split "
                        f"{arrays.name}); use one of {', '.join(LABEL_TARGETS)}")
    require_target(arrays, target)
    m = _aggregator_of(target)
    if m is not None:
        post = np.asarray(arrays.aggregated[AGG_TARGETS[m]], dtype=np.float32)
        return post.copy() if target == AGG_TARGETS[m] else one_hot(post.argmax(axis=1), N_URBAN)
    label = np.asarray(arrays.label)
    if target == "onehot":
        return one_hot(label, k)
    if target == "onehot_ls":
        return smooth_one_hot(label, eps, k)
    if target == "onehot_ls17":
        return smooth_one_hot(label, eps, k, compat_17=True)
    if target == "distribution":
        return np.array(arrays.distribution, dtype=np.float32)
    if target == "distribution_ls":
        return smooth_distribution(np.asarray(arrays.distribution), eps)
    if target == "dawid_skene":
        return np.array(arrays.dawid_skene, dtype=np.float32)
    raise DataError(f"unknown target '{target}'; use one of {', '.join(TARGETS)}")


class LCZDataset:
    """Map-style torch dataset over one split of a store.

    ``ds[i]`` -> sample dict: ``image`` (C, 32, 32) float32 reflectance, ``label`` int64 class
    index 0..K-1, ``target`` (K,) float32, ``index`` int64 row in the split.
    ``ds[rows]`` (array / list of indices) -> the batch dict of the same keys with a leading batch
    dimension, read in one go (the fast path; see ``datamodule.EpochBatchSampler``).
    ``ds.__getitems__(rows)`` -> list of sample dicts (torch's batched fetch for a plain DataLoader).
    """

    def __init__(self, store: Path | Store, split: str, *, bands: Sequence[str] | None = None,
                 target: str = "onehot", label_smoothing: float = 0.1) -> None:
        self.store = store if isinstance(store, Store) else open_store(store)
        self.split = split
        self.arrays = self.store.split(split)
        self.band_idx = band_indices(bands)
        self.bands = [BANDS[i] for i in self.band_idx]
        self.target_name = TARGET_ALIASES.get(target, target)
        self.targets = make_targets(self.arrays, self.target_name, label_smoothing)
        self.labels = np.asarray(self.arrays.label, dtype=np.int64)

    def __len__(self) -> int:
        return self.arrays.n

    def images(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n,) rows -> (n, C, 32, 32) float32 reflectance of the selected bands."""
        raw = self.arrays.image.read(rows)
        if self.band_idx != list(range(raw.shape[1])):
            raw = raw[:, self.band_idx]
        return np.divide(raw, np.float32(REFLECTANCE_SCALE), dtype=np.float32)

    def _rows(self, index) -> np.ndarray:
        rows = np.asarray(index, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"index out of range 0..{len(self) - 1}")
        return rows

    def __getitem__(self, index):
        import torch

        if isinstance(index, (int, np.integer)) or (isinstance(index, np.ndarray) and index.ndim == 0):
            i = int(index)
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"index {int(index)} out of range 0..{len(self) - 1}")
            return {"image": torch.from_numpy(self.images([i])[0]),
                    "label": torch.tensor(int(self.labels[i]), dtype=torch.int64),
                    "target": torch.from_numpy(self.targets[i].copy()),
                    "index": torch.tensor(i, dtype=torch.int64)}
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        rows = self._rows(index)
        return {"image": torch.from_numpy(self.images(rows)),
                "label": torch.from_numpy(self.labels[rows]),
                "target": torch.from_numpy(self.targets[rows]),
                "index": torch.from_numpy(rows.copy())}

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """Batched fetch for torch's DataLoader (auto-collation): one read, a list of sample dicts."""
        batch = self[np.asarray(indices, dtype=np.int64)]
        return [{k: v[j] for k, v in batch.items()} for j in range(len(batch["index"]))]
