"""Tiny stand-ins for the study's unit work (imported by worker processes via PYTHONPATH).

Behaviour is steered by files in the study folder so that it reaches worker processes:
``fail.txt`` (unit ids that raise), ``crash.txt`` (unit ids that exit hard), ``sleep.txt``
(seconds every unit sleeps). Every call appends ``<unit-id>`` to ``calls.txt``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def _common(spec: dict) -> Path:
    study = Path(spec["study"])
    with open(study / "calls.txt", "a") as f:
        f.write(spec["id"] + "\n")
    sleep = study / "sleep.txt"
    if sleep.is_file():
        time.sleep(float(sleep.read_text()))
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
    (study / "summary.csv").write_text("regime,seed,score\n" + "\n".join(sorted(rows)) + "\n")
    return {}


def report(spec: dict) -> dict:
    study = _common(spec)
    (study / "report.md").write_text((study / "summary.csv").read_text())
    return {}


def env(spec: dict) -> dict:
    """Records what the executor gave the worker."""
    _common(spec)
    return {"threads": os.environ.get("OMP_NUM_THREADS"), "device": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "pid": os.getpid()}


def work(name: str) -> dict[str, str]:
    """The work mapping run_study takes, pointing at this module."""
    return {k: f"{name}:{k}" for k in ("train", "evaluate", "calibrate", "aggregate", "report")}
