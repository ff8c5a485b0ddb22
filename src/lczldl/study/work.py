"""Owns the real work of each unit kind (train, evaluate, calibrate, aggregate, report): thin
adapters from a unit's spec (built by :mod:`lczldl.study.runner`) to the library functions.
They run inside worker processes; :data:`lczldl.study.units.DEFAULT_WORK` names them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lczldl.errors import RunError
from lczldl.layout import FINISHED, run_status


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one run into STUDY/runs/REGIME/seedN. ``train_run`` decides what an existing run
    folder means (finished: reused; last.ckpt: resumed; anything else: started clean)."""
    run = Path(spec["run"])
    if run_status(run) == FINISHED:
        print(f"{run}: already finished, nothing to do")
        return {"run": str(run), "reused": True}
    from lczldl.training.run import train_run

    print(f"train {spec['regime']} seed {spec['seed']} -> {run}", flush=True)
    train_run(data=Path(spec["store"]), regime=spec["regime"], seed=int(spec["seed"]),
              out=Path(spec["runs"]), config=Path(spec["config"]), resume=True, progress=False,
              num_threads=spec.get("threads"))
    status = run_status(run)
    if status != FINISHED:
        raise RunError(f"{run}: run status is {status!r} after training, expected {FINISHED!r}")
    return {"run": str(run)}


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Predictions on val/test and plain metrics for one run."""
    from lczldl.evaluation import runs as ev

    ev.evaluate_run(Path(spec["run"]), n_bins=int(spec["n_bins"]), progress=False)
    return {"run": spec["run"]}


def _evaluation(spec: dict[str, Any]) -> Any:
    """The study's evaluation settings (EvaluationConfig; defaults for a spec without them)."""
    from lczldl.config import EvaluationConfig

    return EvaluationConfig(**spec.get("evaluation", {}))


def calibrate(spec: dict[str, Any]) -> dict[str, Any]:
    """Temperature scaling, MC dropout and the beyond-the-paper files for one evaluated run."""
    from lczldl.evaluation import runs as ev

    ev.calibrate_run(Path(spec["run"]), mc_passes=int(spec["mc_passes"]), n_bins=int(spec["n_bins"]),
                     progress=False, evaluation=_evaluation(spec))
    return {"run": spec["run"]}


def aggregate(spec: dict[str, Any]) -> dict[str, Any]:
    """Ensembles per regime and the summary tables over the runs that finished."""
    from lczldl.evaluation import runs as ev

    ev.aggregate_runs(Path(spec["runs"]), out=Path(spec["study"]), n_bins=int(spec["n_bins"]),
                      progress=False, evaluation=_evaluation(spec))
    return {"runs": spec["done_runs"]}


def report(spec: dict[str, Any]) -> dict[str, Any]:
    """Figures and report.html / report.md from the saved files."""
    from lczldl.viz.report import redraw_study

    redraw_study(Path(spec["study"]), intervals=bool(spec.get("intervals", False)))
    return {}
