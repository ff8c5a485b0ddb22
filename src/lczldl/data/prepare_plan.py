"""Owns the plan of ``lczldl data prepare`` (everything decided from the votes, before a pixel is
written): the raw files and their checksums, each city's labels and dropped rows, the split, the
soft targets fitted on the votes (Dawid-Skene posteriors) and each split's per-row arrays.

Label aggregation uses votes only, never images or test labels (as in crowdsourcing): Dawid-Skene
(best of several EM starts, with a rival optimum reported) and the opt-in crowd-kit aggregators
(``aggregators``: posteriors ``agg_<method>``) are fitted on the votes of all kept rows of all
splits. Soft targets go into :attr:`PreparePlan.soft_targets` and are written beside
``distribution.npy``; each fit's summary into :attr:`PreparePlan.fits` (the manifest).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lczldl.config import PrepareConfig
from lczldl.constants import AGG_TARGETS, ALL_CITIES, N_URBAN
from lczldl.data.labels import build_labels
from lczldl.data.prepare_pixels import nonfinite_file_rows
from lczldl.data.readers.votes import find_city_files, open_city
from lczldl.data.splits import make_split
from lczldl.layout import SPLIT_NAMES

#: the drop reason of rows with non-finite pixels (with ``drop_nonfinite``)
DROP_NONFINITE = "nonfinite_pixels"
DS_NOTE = ("Dawid-Skene EM fitted on the votes of all kept rows of all splits (votes only, no images), "
           "best log-likelihood of several starts (data.dawid_skene.fit_dawid_skene_multistart)")


@dataclass
class PreparePlan:
    """What prepare will write. Cities are in ``constants.ALL_CITIES`` order; ``kept[c]`` are the
    file rows of city c that survive the label rules; ``parts[split]`` lists (city, indices into
    ``kept[city]``, sorted); ``soft_targets[name][c]`` is (len(kept[c]), 10) float32."""

    cities: dict[str, Any]
    labels: dict[str, Any]
    kept: dict[str, np.ndarray]
    parts: dict[str, list[tuple[str, np.ndarray]]]
    soft_targets: dict[str, dict[str, np.ndarray]]
    dropped_by_city: dict[str, dict[str, int]]
    sources: dict[str, str]
    config: dict[str, Any]
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def city_names(self) -> list[str]:
        return list(self.cities)

    def n(self, split: str) -> int:
        """Rows of ``split``."""
        return int(sum(len(r) for _, r in self.parts[split]))

    def dropped(self) -> dict[str, int]:
        """reason -> rows dropped over all cities."""
        out: dict[str, int] = {}
        for per_city in self.dropped_by_city.values():
            for k, v in per_city.items():
                out[k] = out.get(k, 0) + int(v)
        return out

    def destinations(self) -> dict[str, np.ndarray]:
        """city -> (n_file,) int64 index into SPLIT_NAMES of each file row, -1 where dropped."""
        dest = {c: np.full(cf.n, -1, dtype=np.int64) for c, cf in self.cities.items()}
        for s_i, s in enumerate(SPLIT_NAMES):
            for c, rows in self.parts[s]:
                dest[c][self.kept[c][rows]] = s_i
        return dest


def recorded_config(settings: PrepareConfig, chunk_rows: int) -> dict[str, Any]:
    """The settings as the manifest records them (compared on a rerun: same -> no-op)."""
    return {"split": settings.split, "seed": int(settings.seed),
            "train_cities": list(settings.train_cities) if settings.train_cities else None,
            "val_cities": list(settings.val_cities) if settings.val_cities else None,
            "test_cities": list(settings.test_cities) if settings.test_cities else None,
            "smoothing": float(settings.smoothing), "drop_nonfinite": bool(settings.drop_nonfinite),
            "dawid_skene": DS_NOTE, "aggregators": list(settings.aggregators), "chunk_rows": chunk_rows}


def open_sources(raw: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(city -> validated vote file, in ALL_CITIES order; file name -> sha256)."""
    files = find_city_files(raw)
    cities = {c: open_city(files[c]) for c in ALL_CITIES if c in files}
    return cities, {files[c].name: cf.sha256() for c, cf in cities.items()}


def make_plan(cities: dict[str, Any], sources: dict[str, str], settings: PrepareConfig,
              config: dict[str, Any], progress: bool) -> PreparePlan:
    """Labels, drops (with the optional non-finite scan), split and soft targets of the kept rows."""
    labels, dropped_by_city = {}, {}
    for c, cf in cities.items():
        labels[c] = build_labels(cf.votes, cf.original, smoothing=settings.smoothing, where=str(cf.path))
        dropped_by_city[c] = {**labels[c].dropped, DROP_NONFINITE: 0}
    if settings.drop_nonfinite:
        for c, bad in nonfinite_file_rows(cities, progress).items():
            dropped_by_city[c][DROP_NONFINITE] = int((bad & labels[c].keep).sum())
            labels[c].keep = labels[c].keep & ~bad
    kept = {c: np.nonzero(labels[c].keep)[0] for c in cities}
    parts = make_split(settings.split, {c: labels[c].label[kept[c]] for c in cities}, seed=settings.seed,
                       train_cities=settings.train_cities, val_cities=settings.val_cities,
                       test_cities=settings.test_cities,
                       city_keep={c: labels[c].keep for c in cities})  # authors: draw over all rows
    order = {c: i for i, c in enumerate(cities)}
    parts = {s: sorted(((c, np.sort(np.asarray(r, dtype=np.int64))) for c, r in parts[s] if len(r)),
                       key=lambda cr: order[cr[0]]) for s in SPLIT_NAMES}
    plan = PreparePlan(cities=cities, labels=labels, kept=kept, parts=parts, soft_targets={},
                       dropped_by_city=dropped_by_city, sources=sources, config=config)
    fit_dawid_skene_targets(plan)
    fit_aggregated_targets(plan, settings.aggregators, progress)
    return plan


def _kept_votes(plan: PreparePlan) -> np.ndarray:
    """(rows, E) votes of every kept row, cities in plan order, rows in file order."""
    return np.concatenate([plan.labels[c].votes[plan.kept[c]] for c in plan.cities])


def _per_city(plan: PreparePlan, posteriors: np.ndarray) -> dict[str, np.ndarray]:
    """(rows, K) posteriors of :func:`_kept_votes`' rows -> city -> (kept rows, K) float32."""
    post, offset = {}, 0
    for c in plan.cities:
        post[c] = np.asarray(posteriors[offset:offset + len(plan.kept[c])], dtype=np.float32)
        offset += len(plan.kept[c])
    return post


def fit_dawid_skene_targets(plan: PreparePlan) -> None:
    """Dawid-Skene posteriors of every kept row (EM on the votes of all splits, the best of several
    starts) into ``plan.soft_targets["dawid_skene"]`` and the fit's summary into
    ``plan.fits["dawid_skene"]``: the winning start, every start's log-likelihood and iterations, and
    the rival optimum (which classes swap, how many rows) or None."""
    from lczldl.data.dawid_skene import fit_dawid_skene_multistart  # deferred: scipy

    all_votes = _kept_votes(plan)
    fit = fit_dawid_skene_multistart(all_votes, N_URBAN)
    ds = fit.best
    plan.soft_targets["dawid_skene"] = _per_city(plan, ds.posteriors)
    plan.fits["dawid_skene"] = {"n_iter": int(ds.n_iter), "converged": bool(ds.converged),
                                "log_likelihood": float(ds.log_likelihood), "rows": int(len(all_votes)),
                                "start": fit.best_start, "starts": fit.starts, "rival": fit.rival}


def fit_aggregated_targets(plan: PreparePlan, methods: list[str], progress: bool = False) -> None:
    """Posteriors of each crowd-kit aggregator in ``methods`` (fitted on the votes of all kept rows,
    like Dawid-Skene) into ``plan.soft_targets["agg_<method>"]`` and its info (iterations,
    converged, seconds, crowd-kit version) into ``plan.fits["aggregation"][method]``."""
    if not methods:
        return
    from lczldl.data.aggregation import aggregate  # deferred: scipy (and crowd-kit)

    all_votes = _kept_votes(plan)
    infos = {}
    for m in methods:
        if progress:
            print(f"crowd-kit {m} on the votes of {len(all_votes):,} rows ...", file=sys.stderr, flush=True)
        res = aggregate(all_votes, m, num_classes=N_URBAN)
        plan.soft_targets[AGG_TARGETS[m]] = _per_city(plan, res.posteriors)
        infos[m] = res.info
        if progress:
            print(f"  {m}: {res.info['iterations']} iterations, converged {res.info['converged']}, "
                  f"{res.info['seconds']:.1f} s", file=sys.stderr, flush=True)
    plan.fits["aggregation"] = infos


def split_columns(plan: PreparePlan, split: str) -> dict[str, np.ndarray]:
    """The per-row arrays of ``split`` (docs/architecture.md), rows in city order, file order:
    label, distribution, every soft target, votes, original, city, vote_entropy, row."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("label", "distribution", *plan.soft_targets,
                                                          "votes", "original", "city", "vote_entropy", "row")}
    order = {c: i for i, c in enumerate(plan.cities)}
    for c, rows in plan.parts[split]:
        lab, file_rows = plan.labels[c], plan.kept[c][rows]
        cols["label"].append(lab.label[file_rows].astype(np.int64))
        cols["distribution"].append(lab.distribution[file_rows].astype(np.float32))
        for name, per_city in plan.soft_targets.items():
            cols[name].append(per_city[c][rows])
        cols["votes"].append(lab.votes[file_rows].astype(np.int8))
        cols["original"].append(lab.original[file_rows].astype(np.int8))
        cols["city"].append(np.full(len(rows), order[c], dtype=np.int16))
        cols["vote_entropy"].append(lab.entropy[file_rows].astype(np.float32))
        cols["row"].append(file_rows.astype(np.int64))
    return {k: np.concatenate(v) for k, v in cols.items()}
