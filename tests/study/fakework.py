"""Tiny stand-ins for the study's unit work (imported by worker processes via PYTHONPATH).

Behaviour is steered by files in the study folder so that it reaches worker processes:
``fail.txt`` (unit ids that raise), ``crash.txt`` (unit ids that exit hard), ``hold.txt`` (unit
ids that write ``held-<unit-id>`` with their pid and then block for good: they end only when
killed). Every call appends ``<unit-id>`` to ``calls.txt``. A fake pack runs the fake train of
each member in turn (the files above act on member ids too) and records each member's marker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from killpoint import block_after_epoch, block_after_pack_epoch, block_forever, write_pid


def _common(spec: dict) -> Path:
    study = Path(spec["study"])
    with open(study / "calls.txt", "a") as f:
        f.write(spec["id"] + "\n")
    hold = study / "hold.txt"
    if hold.is_file() and spec["id"] in hold.read_text().split():
        write_pid(study / f"held-{spec['id']}")
        block_forever(study)
    crash = study / "crash.txt"
    if crash.is_file() and spec["id"] in crash.read_text().split():
        os._exit(3)
    fail = study / "fail.txt"
    if fail.is_file() and spec["id"] in fail.read_text().split():
        raise ValueError(f"planned failure of {spec['id']}")
    return study


def value(regime: str, seed: int) -> float:
    """The fake 'metric' of a run: known in advance, so tests can check the summary by hand."""
    return {"onehot": 1.0, "onehot_ls": 2.0, "dist": 3.0, "dist_ls": 4.0, "dawid_skene": 5.0}[regime] + 0.1 * seed


def train(spec: dict) -> dict:
    _common(spec)
    run = Path(spec["run"])
    run.mkdir(parents=True, exist_ok=True)
    (run / "weights.txt").write_text(repr(value(spec["regime"], spec["seed"])))
    return {"threads": os.environ.get("OMP_NUM_THREADS"), "device": os.environ.get("CUDA_VISIBLE_DEVICES")}


def pack(spec: dict) -> dict:
    """The fake train of every member, then its marker (done, or failed with a planned failure's
    reason), as the real pack work records them."""
    from lczldl.study.units import write_marker

    study = _common(spec)
    for m in spec["members"]:
        try:
            train(m)
        except ValueError as exc:
            write_marker(study, m["id"], kind=m["kind"], inputs=m["inputs"], status="failed", log=spec["log"],
                         error=f"ValueError: {exc}")
            continue
        write_marker(study, m["id"], kind=m["kind"], inputs=m["inputs"], status="done", log=spec["log"],
                     result={"pack": spec["id"]})
    return {"members": [m["id"] for m in spec["members"]]}


def evaluate(spec: dict) -> dict:
    _common(spec)
    run = Path(spec["run"])
    (run / "metrics.json").write_text(json.dumps({"score": float((run / "weights.txt").read_text())}))
    return {}


def calibrate(spec: dict) -> dict:
    _common(spec)
    run = Path(spec["run"])
    m = json.loads((run / "metrics.json").read_text())
    (run / "metrics_ts.json").write_text(json.dumps({"score": m["score"] / 2}))
    return {}


def aggregate(spec: dict) -> dict:
    study = _common(spec)
    rows = []
    for regime, seed in spec["done_runs"]:
        m = json.loads((Path(spec["runs"]) / regime / f"seed{seed}" / "metrics_ts.json").read_text())
        rows.append(f"{regime},{seed},{m['score']:.3f}")
    out = Path(spec.get("out") or study)                      # STUDY, or STUDY/budget/k<k> of a budget
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.csv").write_text("regime,seed,score\n" + "\n".join(sorted(rows)) + "\n")
    return {}


def budget(spec: dict) -> dict:
    """The fake budget table: each k's summary (and the study's as "all") in one file."""
    study = _common(spec)
    parts = [f"k{k}\n" + (study / "budget" / f"k{k}" / "summary.csv").read_text() for k in spec["vote_budget"]["k"]]
    (study / "budget" / "budget.csv").write_text("".join(parts) + "all\n" + (study / "summary.csv").read_text())
    return {}


def report(spec: dict) -> dict:
    study = _common(spec)
    (study / "report.md").write_text((study / "summary.csv").read_text())
    return {}


def env(spec: dict) -> dict:
    """Records what the executor gave the worker."""
    _common(spec)
    return {"threads": os.environ.get("OMP_NUM_THREADS"), "device": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "pid": os.getpid(), "cwd": os.getcwd(), "mark": os.environ.get("LCZLDL_TEST_MARK")}


def blas_threads(spec: dict) -> dict:
    """Records the thread counts of the BLAS libraries loaded in the worker (numpy's OpenBLAS)."""
    _common(spec)
    import numpy  # noqa: F401  (its BLAS)
    from threadpoolctl import threadpool_info

    return {"blas": sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})}


def train_blocking_after_epoch_1(spec: dict) -> dict:
    """The real train unit, except that it blocks for good right after ``last.ckpt`` of epoch 1 is
    on disk (having written ``checkpointed-<unit-id>``), so a test can kill it at a known point."""
    from lczldl.study import work

    block_after_epoch(1, Path(spec["study"]) / f"checkpointed-{spec['id']}")
    return work.train(spec)


def pack_blocking_after_epoch_0(spec: dict) -> dict:
    """The real pack unit, except that it blocks for good right after the pack committed epoch 0
    (having written ``checkpointed-<unit-id>``), so a test can kill it at a known point."""
    from lczldl.study import work

    block_after_pack_epoch(0, Path(spec["study"]) / f"checkpointed-{spec['id']}")
    return work.pack(spec)


def work(name: str) -> dict[str, str]:
    """The work mapping run_study takes, pointing at this module."""
    return {k: f"{name}:{k}" for k in ("train", "pack", "evaluate", "calibrate", "aggregate", "budget", "report")}
