"""Vote statistics of a label set and their distance to the real release (``lczldl data inspect``).

Pure functions first (:func:`vote_statistics`, :func:`tv_distance`, :func:`compare_to_reference`),
readers (:func:`load_reference`, :func:`statistics_of_path`, :func:`soft_target_report`) and the
rich printer (:func:`inspect_path`) last. For a prepared store it also reports each soft target's
distance to the raw vote distribution and the Dawid-Skene rival recorded in the manifest.

Conventions: ``distributions`` are (N, 10) urban vote distributions (rows sum to 1, class index i
<-> LCZ i+1); ``majority`` is the (N,) majority class index 0..9. Entropies are in nats and binned
in the paper's bins ``ENTROPY_BIN_EDGES`` left-closed ([-0.1, 0.2), [0.2, 0.5), ...), as the
prepared store's manifest does. A row is unanimous when its largest share is 1.

The bounds the twin must meet (issue 2) are :data:`BOUNDS`: total-variation distance of the
majority-class shares and of the entropy-bin shares each <= 0.10, unanimous share within 0.08 of the
reference, and each real disagreement pair (:data:`DISAGREEMENT_PAIRS`) present: the mean vote
share of the neighbour class given the majority class within a factor 2 of the reference value;
a pair whose majority class has fewer than ``pair_min_rows`` rows is reported but not judged (its
mean is too noisy: LCZ 1 is 0.7 % of the rows, ~40 rows in the small twin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lczldl.constants import (
    AUTHORS_HELDOUT_CITIES,
    AUTHORS_TRAIN_CITIES,
    N_URBAN,
)
from lczldl.data.labels import build_labels, urban_distribution, vote_counts
from lczldl.data.readers._h5 import open_h5, read_all
from lczldl.data.readers.votes import find_city_files, open_city
from lczldl.data.store import is_prepared_store, open_store
from lczldl.distributions import (
    ENTROPY_BIN_EDGES,
    N_ENTROPY_BINS,
    entropy_bin_shares,
    entropy_nats,
    tv_distance,
)
from lczldl.errors import DataError

#: Directed pairs (majority LCZ, neighbour LCZ) where the real experts disagree (PROTOCOL.md):
#: mean share of the neighbour's votes among images whose majority is the first class.
DISAGREEMENT_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 4), (3, 7), (7, 3), (4, 5), (5, 2), (6, 3), (9, 6), (10, 8),
)
#: Pass/fail bounds of the comparison with the reference.
BOUNDS = {"class_tv": 0.10, "entropy_tv": 0.10, "unanimous_abs": 0.08, "pair_factor": 2.0,
          "pair_min_rows": 30}
REFERENCE_KEY = "test_label_distributions"
_UNANIMOUS_TOL = 1e-6


def pair_name(a: int, b: int) -> str:
    """(1, 4) -> "1->4" (LCZ ids)."""
    return f"{a}->{b}"


def vote_statistics(distributions: np.ndarray, majority: np.ndarray) -> dict:
    """Statistics of (N, 10) urban vote distributions with (N,) majority class indices 0..9.

    Returns a JSON-friendly dict: ``n``; ``class_shares`` (10,) majority-class shares;
    ``entropy_bin_shares`` (6,); ``unanimous_share``; ``mean_entropy`` (nats);
    ``mean_top_share`` (mean largest vote share); ``mean_given_majority`` (10, 10) row k = mean
    distribution of the rows whose majority is k (NaN row where there is none); ``pairs``
    {"a->b": mean share of LCZ b given majority LCZ a} for :data:`DISAGREEMENT_PAIRS`;
    per majority class k: ``entropy_bins_given_majority`` (10, 6) entropy-bin shares of its rows
    and ``unanimous_given_majority`` (10,) (NaN where class k has no row).
    """
    d = np.asarray(distributions, dtype=np.float64)
    m = np.asarray(majority, dtype=np.int64)
    if d.ndim != 2 or d.shape[1] != N_URBAN:
        raise DataError(f"vote statistics: distributions must be (N, {N_URBAN}), got {d.shape}")
    if m.shape != (d.shape[0],):
        raise DataError(f"vote statistics: majority must be ({d.shape[0]},), got {m.shape}")
    if m.size and (m.min() < 0 or m.max() >= N_URBAN):
        raise DataError("vote statistics: majority class indices must be 0..9")
    n = d.shape[0]
    ent = entropy_nats(np.asarray(d, dtype=np.float64))
    counts = np.bincount(m, minlength=N_URBAN).astype(np.float64)
    given = np.full((N_URBAN, N_URBAN), np.nan)
    for k in range(N_URBAN):
        if counts[k]:
            given[k] = d[m == k].mean(axis=0)
    top = d.max(axis=1) if n else np.zeros(0)
    unanimous = top >= 1 - _UNANIMOUS_TOL
    n_bins = N_ENTROPY_BINS
    bins_given = np.full((N_URBAN, n_bins), np.nan)
    unanimous_given = np.full(N_URBAN, np.nan)
    for k in np.nonzero(counts)[0]:
        bins_given[k] = entropy_bin_shares(ent[m == k])
        unanimous_given[k] = unanimous[m == k].mean()
    return {
        "n": int(n),
        "class_shares": (counts / max(n, 1)).tolist(),
        "entropy_bin_shares": entropy_bin_shares(ent).tolist(),
        "unanimous_share": float(unanimous.mean()) if n else float("nan"),
        "mean_entropy": float(ent.mean()) if n else float("nan"),
        "mean_top_share": float(top.mean()) if n else float("nan"),
        "mean_given_majority": given.tolist(),
        "pairs": {pair_name(a, b): float(given[a - 1, b - 1]) for a, b in DISAGREEMENT_PAIRS},
        "entropy_bins_given_majority": bins_given.tolist(),
        "unanimous_given_majority": unanimous_given.tolist(),
    }


def compare_to_reference(stats: dict, ref_stats: dict, bounds: dict | None = None) -> dict:
    """Distances of ``stats`` to ``ref_stats`` (both from :func:`vote_statistics`) with pass/fail.

    Returns {"class_tv", "entropy_tv", "unanimous_abs": float, "pairs": {"a->b": {"value",
    "reference", "ratio", "pass"}}, "pass": {criterion: bool}, "all_pass": bool}. A pair passes when
    its value lies within a factor ``pair_factor`` of the reference's (NaN counts as a failure);
    pairs whose majority class has fewer than ``pair_min_rows`` rows get "judged": False and do
    not count.
    """
    b = dict(BOUNDS, **(bounds or {}))
    class_tv = tv_distance(stats["class_shares"], ref_stats["class_shares"])
    entropy_tv = tv_distance(stats["entropy_bin_shares"], ref_stats["entropy_bin_shares"])
    unan = abs(stats["unanimous_share"] - ref_stats["unanimous_share"])
    pairs = {}
    for name, ref in ref_stats["pairs"].items():
        val = stats["pairs"].get(name, float("nan"))
        ratio = val / ref if ref > 0 else float("nan")
        ok = bool(np.isfinite(ratio) and 1 / b["pair_factor"] <= ratio <= b["pair_factor"])
        a = int(name.split("->")[0])
        rows = stats["class_shares"][a - 1] * stats["n"]
        judged = bool(rows >= b["pair_min_rows"])
        pairs[name] = {"value": val, "reference": ref, "ratio": ratio, "pass": ok, "judged": judged,
                       "rows": int(round(rows))}
    passed = {
        "class_tv": bool(class_tv <= b["class_tv"]),
        "entropy_tv": bool(entropy_tv <= b["entropy_tv"]),
        "unanimous_abs": bool(unan <= b["unanimous_abs"]),
        "pairs": all(p["pass"] for p in pairs.values() if p["judged"]),
    }
    return {"class_tv": class_tv, "entropy_tv": entropy_tv, "unanimous_abs": unan, "pairs": pairs,
            "pass": passed, "all_pass": all(passed.values()), "bounds": b}


# ----------------------------------------------------------------------------------------- readers

def load_reference(path: Path) -> dict:
    """Read a distributions .h5 (dataset ``test_label_distributions``, or its only 2-D dataset).

    Rows with NaN (no urban vote) are dropped and counted. Returns {"distribution": (N, 10)
    float64, "majority": (N,) argmax class index (first maximum on ties: the file holds no tie
    information), "n_nan": int, "path": str}.
    """
    path = Path(path)
    with open_h5(path) as f:
        if REFERENCE_KEY in f:
            key = REFERENCE_KEY
        else:
            cands = [k for k, v in f.items() if getattr(v, "ndim", 0) == 2 and v.shape[1] == N_URBAN]
            if len(cands) != 1:
                raise DataError(f"{path}: missing key '{REFERENCE_KEY}' and no single (N, 10) "
                                f"dataset to use instead (has: {', '.join(sorted(f.keys())) or 'nothing'})")
            key = cands[0]
        if f[key].ndim != 2 or f[key].shape[1] != N_URBAN:
            raise DataError(f"{path}: '{key}' has shape {f[key].shape}, expected (N, {N_URBAN})")
        d = np.asarray(read_all(f[key], path, key), dtype=np.float64)
    bad = ~np.isfinite(d).all(axis=1)
    d = d[~bad]
    if not len(d):
        raise DataError(f"{path}: '{key}' holds no finite rows")
    return {"distribution": d, "majority": d.argmax(axis=1), "n_nan": int(bad.sum()), "path": str(path)}


def raw_folder_labels(path: Path) -> dict[str, dict]:
    """Labels of every city file in a raw vote folder: {city: {"distribution", "majority", "dropped"}}.

    Uses the project's label rules (:func:`lczldl.data.labels.build_labels`); kept urban rows only.
    """
    out = {}
    for city, p in find_city_files(Path(path)).items():
        cf = open_city(p)
        lab = build_labels(cf.votes, cf.original, where=str(p))
        out[city] = {"distribution": lab.distribution[lab.keep].astype(np.float64),
                     "majority": lab.label[lab.keep], "dropped": lab.dropped}
    return out


def _pool(parts: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, N_URBAN)), np.zeros(0, dtype=np.int64)
    return (np.concatenate([p["distribution"] for p in parts]),
            np.concatenate([p["majority"] for p in parts]))


def soft_target_report(store: Any) -> dict[str, dict[str, Any]]:
    """Every soft target the store holds (distribution, dawid_skene, agg_*), all splits pooled:
    :func:`lczldl.data.aggregation.target_report` against the raw vote distribution (urban vote
    shares recomputed from votes.npy, unsmoothed) with the majority labels."""
    from lczldl.data.aggregation import target_report  # deferred: scipy

    parts = [store.split(s) for s in store.splits]
    if not parts:
        return {}
    names = [n for n in parts[0].soft_targets() if all(n in a.soft_targets() for a in parts)]
    raw = np.concatenate([urban_distribution(vote_counts(np.asarray(a.votes))) for a in parts])
    targets = {n: np.concatenate([np.asarray(a.soft_targets()[n]) for a in parts]) for n in names}
    return target_report(targets, raw, np.concatenate([np.asarray(a.label) for a in parts]))


def statistics_of_path(path: Path) -> tuple[str, dict[str, dict], dict]:
    """Statistics of a prepared store, a raw vote folder or a distributions .h5.

    Returns (kind, {group: vote_statistics}, extra) where groups are the store's splits + "all"
    (store), "train cities" / "held-out cities" / "all" of the authors' split (raw folder), or
    "file" (.h5); ``extra`` holds dropped-row counts, and for a store ``targets``
    (:func:`soft_target_report`) and the manifest's ``dawid_skene`` and ``aggregation`` records.
    """
    path = Path(path)
    groups: dict[str, dict] = {}
    if path.is_dir() and is_prepared_store(path):
        store = open_store(path)            # the store's reader checks the manifest and each array
        manifest = store.manifest
        if not store.has_votes:
            raise DataError(f"{path}: this store has no expert votes (one label per image, e.g. So2Sat "
                            "LCZ42), so it has no vote statistics; its class counts are in manifest.json")
        parts = []
        for split in store.splits:
            arrays = store.split(split)
            d = np.asarray(arrays.distribution, dtype=np.float64)
            m = np.asarray(arrays.label, dtype=np.int64)
            parts.append({"distribution": d, "majority": m})
            groups[split] = vote_statistics(d, m)
        groups["all"] = vote_statistics(*_pool(parts))
        return "prepared store", groups, {"dropped": manifest.get("dropped", {}),
                                          "targets": soft_target_report(store),
                                          "dawid_skene": manifest.get("dawid_skene") or {},
                                          "aggregation": manifest.get("aggregation") or {}}
    if path.is_dir():
        labels = raw_folder_labels(path)
        dropped: dict[str, int] = {}
        for v in labels.values():
            for k, c in v["dropped"].items():
                dropped[k] = dropped.get(k, 0) + c
        for name, cities in (("train cities", AUTHORS_TRAIN_CITIES),
                             ("held-out cities", AUTHORS_HELDOUT_CITIES)):
            groups[name] = vote_statistics(*_pool([labels[c] for c in cities if c in labels]))
        groups["all"] = vote_statistics(*_pool(list(labels.values())))
        return "raw vote folder", groups, {"dropped": dropped}
    if path.suffix.lower() in (".h5", ".hdf5"):
        ref = load_reference(path)
        groups["file"] = vote_statistics(ref["distribution"], ref["majority"])
        return "distributions file", groups, {"dropped": {"nan_rows": ref["n_nan"]}}
    raise DataError(f"{path}: not a prepared store (no manifest.json), a raw vote folder or a .h5 "
                    "distributions file")


# ----------------------------------------------------------------------------------------- printer

def _fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _per_class_table(name: str, stats: dict, ref_stats: dict | None):
    """rich Table: per majority LCZ, its share of the rows and the entropy-bin shares of its rows
    (bins below 1.3 nats; 0 = unanimous for 11 votes) for ``stats`` and ``ref_stats``, with the
    TV distance of the bins."""
    from rich.table import Table

    n_show = len(ENTROPY_BIN_EDGES) - 2                  # the last bin (>= 1.3) is empty in practice
    edges = " ".join(f"{e:g}" for e in ENTROPY_BIN_EDGES[1:n_show + 1])
    t = Table(title=f"per majority class ({name}{' vs reference' if ref_stats else ''}): "
              f"share of rows, entropy-bin shares (bin edges {edges} nats)")
    t.add_column("LCZ", justify="right")
    t.add_column("rows", justify="right")
    t.add_column("entropy bins", no_wrap=True)
    if ref_stats is not None:
        t.add_column("ref rows", justify="right")
        t.add_column("ref entropy bins", no_wrap=True)
        t.add_column("TV", justify="right")

    def cells(st: dict, k: int) -> list[str]:
        bins = st["entropy_bins_given_majority"][k][:n_show]
        return [_fmt(st["class_shares"][k]), " ".join(_fmt(x, 2).replace("0.", ".") for x in bins)]

    for k in range(N_URBAN):
        row = [str(k + 1), *cells(stats, k)]
        if ref_stats is not None:
            a = np.asarray(stats["entropy_bins_given_majority"][k], dtype=np.float64)
            b = np.asarray(ref_stats["entropy_bins_given_majority"][k], dtype=np.float64)
            row += [*cells(ref_stats, k), _fmt(tv_distance(a, b), 2)]
        t.add_row(*row)
    return t


def _print_targets(console: Any, extra: dict) -> None:
    """The soft targets' distances to the raw votes, the aggregators' fits and the Dawid-Skene rival."""
    from rich.table import Table

    t = Table(title="soft targets vs the raw vote distribution (all splits): mean KL(votes || target), "
                    "mean TV, mean entropy, argmax = majority, entropy-bin shares of the target")
    for col in ("target", "KL (nats)", "TV", "entropy", "argmax = majority", "entropy bins"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for name, r in extra["targets"].items():
        n = max(sum(r["entropy_histogram"]), 1)
        t.add_row(name, _fmt(r["kl"]), _fmt(r["tv"]), _fmt(r["entropy"]), _fmt(r.get("argmax_agreement")),
                  " ".join(_fmt(c / n, 2).replace("0.", ".") for c in r["entropy_histogram"]))
    console.print(t)
    for m, info in extra.get("aggregation", {}).items():
        console.print(f"crowd-kit {m}: {info.get('iterations')} iterations, converged {info.get('converged')}, "
                      f"{info.get('seconds')} s", highlight=False)
    ds = extra.get("dawid_skene") or {}
    rival = ds.get("rival")
    if rival:
        console.print(f"[yellow]warning: Dawid-Skene has a rival optimum {rival.get('log_likelihood_gap', 0):.2f} "
                      f"nats below the best (start {rival.get('start')!r} vs {rival.get('best_start')!r}): "
                      f"{rival.get('rows_changed')} rows change class, {rival.get('summary')}; the dawid_skene "
                      "target is not identified for these classes[/yellow]", highlight=False)
    elif ds.get("start"):
        console.print(f"Dawid-Skene: best of {len(ds.get('starts') or [])} starts ({ds['start']!r}), "
                      "no rival optimum", highlight=False)


def inspect_path(path: Path, reference: Path | None = None, per_class: bool = False) -> None:
    """Print the vote statistics of ``path`` (and with ``reference`` the distances, PASS/FAIL);
    ``per_class`` adds a table per majority class for the pooled rows (``all`` / the file)."""
    from rich.console import Console
    from rich.table import Table

    kind, groups, extra = statistics_of_path(Path(path))
    ref_stats = None
    if reference is not None:
        ref = load_reference(Path(reference))
        ref_stats = vote_statistics(ref["distribution"], ref["majority"])
    console = Console()
    cols = dict(groups)
    if ref_stats is not None:
        cols["reference"] = ref_stats
    t = Table(title=f"{path} ({kind})")
    t.add_column("statistic")
    for name in cols:
        t.add_column(name, justify="right")
    t.add_row("rows kept", *[str(s["n"]) for s in cols.values()])
    for i in range(N_URBAN):
        t.add_row(f"share LCZ {i + 1}", *[_fmt(s["class_shares"][i]) for s in cols.values()])
    edges = ENTROPY_BIN_EDGES
    for i in range(len(edges) - 1):
        t.add_row(f"entropy [{edges[i]:g}, {edges[i + 1]:g})",
                  *[_fmt(s["entropy_bin_shares"][i]) for s in cols.values()])
    t.add_row("unanimous share", *[_fmt(s["unanimous_share"]) for s in cols.values()])
    t.add_row("mean entropy (nats)", *[_fmt(s["mean_entropy"]) for s in cols.values()])
    t.add_row("mean top-vote share", *[_fmt(s["mean_top_share"]) for s in cols.values()])
    for a, b in DISAGREEMENT_PAIRS:
        t.add_row(f"pair {pair_name(a, b)}", *[_fmt(s["pairs"][pair_name(a, b)]) for s in cols.values()])
    console.print(t)
    if extra.get("dropped"):
        console.print("dropped rows: " + ", ".join(f"{k} {v}" for k, v in extra["dropped"].items()))
    if per_class:
        pooled = "all" if "all" in groups else next(iter(groups))
        console.print(_per_class_table(pooled, groups[pooled], ref_stats))
    if extra.get("targets"):
        _print_targets(console, extra)
    if ref_stats is None:
        return
    d = Table(title=f"distance to {reference}")
    d.add_column("criterion")
    d.add_column("bound", justify="right")
    for name in groups:
        d.add_column(name, justify="right")
    comps = {name: compare_to_reference(s, ref_stats) for name, s in groups.items()}

    def mark(ok: bool) -> str:
        return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"

    for crit, label in (("class_tv", "class shares TV"), ("entropy_tv", "entropy bins TV"),
                        ("unanimous_abs", "|unanimous - ref|")):
        d.add_row(label, f"<= {BOUNDS[crit]:.2f}",
                  *[f"{_fmt(c[crit])} {mark(c['pass'][crit])}" for c in comps.values()])
    for a, b in DISAGREEMENT_PAIRS:
        pn = pair_name(a, b)
        d.add_row(f"pair {pn} / ref", f"x{1 / BOUNDS['pair_factor']:.1f}..x{BOUNDS['pair_factor']:.0f}",
                  *[f"{_fmt(c['pairs'][pn]['ratio'], 2)} " + (mark(c['pairs'][pn]['pass'])
                    if c['pairs'][pn]['judged'] else f"(n={c['pairs'][pn]['rows']}, not judged)")
                    for c in comps.values()])
    d.add_row("all bounds", "", *[mark(c["all_pass"]) for c in comps.values()])
    console.print(d)
