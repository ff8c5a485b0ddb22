"""Owns the real work of each unit kind (train, pack, evaluate, calibrate, aggregate, budget, report): thin
adapters from a unit's spec (built by :mod:`lczldl.study.runner`) to the library functions.
They run inside worker processes; :data:`lczldl.study.units.DEFAULT_WORK` names them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lczldl.config import EvaluationConfig, VoteBudgetConfig, load_config
from lczldl.errors import RunError
from lczldl.evaluation import runs as ev
from lczldl.evaluation.budget import write_budget_table
from lczldl.layout import FAILED, FINISHED, checkpoint_path, read_run_info, run_dir, run_status
from lczldl.study.units import DONE, write_marker


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one run into STUDY/runs/REGIME/seedN. ``train_run`` decides what an existing run
    folder means (finished: reused; last.ckpt: resumed; anything else: started clean)."""
    run = Path(spec["run"])
    if run_status(run) == FINISHED:
        print(f"{run}: already finished, nothing to do")
        return {"run": str(run), "reused": True}
    from lczldl.training.run import train_run  # deferred: torch, lightning

    print(f"train {spec['regime']} seed {spec['seed']} -> {run}", flush=True)
    train_run(Path(spec["store"]), int(spec["seed"]), Path(spec["runs"]),
              _run_config(spec, **{"train.regime": spec["regime"]}), resume=True, progress=False)
    status = run_status(run)
    if status != FINISHED:
        raise RunError(f"{run}: run status is {status!r} after training, expected {FINISHED!r}")
    return {"run": str(run)}


def pack(spec: dict[str, Any]) -> dict[str, Any]:
    """Train the pack's members (``spec["members"]``: the specs of the train units it carries)
    together with :func:`lczldl.training.packed.train_pack` into STUDY/runs, and write each
    member's train marker as soon as it finished (done) or failed (the reason from its run.json).
    Finished run folders are reused, unfinished ones resume from ``last.ckpt``. A pack that dies
    with an exception records it for every member it had not finished; its own unit is done once
    every member has its marker."""
    from lczldl.training.packed import train_pack  # deferred: torch, lightning

    study, runs = Path(spec["study"]), Path(spec["runs"])
    members = {(m["regime"], int(m["seed"])): m for m in spec["members"]}
    outcome: dict[str, str] = {}

    def record(results: list, final_error: str | None = None) -> None:
        """Write the marker of each member of ``results`` that has none yet and is finished or
        failed; with ``final_error``, every other one fails with that reason."""
        for r in results:
            m = members[(r.regime, r.seed)]
            if m["id"] in outcome:
                continue
            if r.status == FINISHED:
                info = read_run_info(r.run_dir) or {}
                write_marker(study, m["id"], kind=m["kind"], inputs=m["inputs"], status=DONE, log=spec["log"],
                             wall_s=info.get("wall_time_s"), result={"run": str(r.run_dir), "pack": spec["id"]})
            elif final_error is not None or r.status == FAILED:
                error = final_error or (read_run_info(r.run_dir) or {}).get("error") or r.error or "failed"
                write_marker(study, m["id"], kind=m["kind"], inputs=m["inputs"], status=FAILED, log=spec["log"],
                             error=error)
            else:
                continue
            outcome[m["id"]] = r.status

    record([r for r in _statuses(runs, members) if r.status == FINISHED])   # reused: at once
    print(f"pack {spec['id']}: training {', '.join(m['id'] for m in spec['members'])} -> {runs}", flush=True)
    for (regime, seed), m in members.items():
        last = checkpoint_path(run_dir(runs, regime, seed), "last")
        if m["id"] not in outcome and last.is_file():
            print(f"{m['id']}: resuming from {last}", flush=True)
    try:
        results = train_pack(Path(spec["store"]), list(members), runs, _run_config(spec), resume=True,
                             on_epoch=lambda epoch, rs: record(rs))
    except Exception as exc:  # every member not finished fails with the pack's reason
        import traceback

        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        record(_statuses(runs, members), final_error=f"pack {spec['id']}: {type(exc).__name__}: {first}"[:500])
        return {"members": outcome}
    record(results)
    record(results, final_error=f"pack {spec['id']} ended with this run unfinished")
    return {"members": outcome}


def _run_config(spec: dict[str, Any], **updates: object) -> Any:
    """The resolved config of a train or pack unit: the study's run config, the unit's thread
    count (``spec["threads"]``), the vote budget of a budget unit (``spec["budget"]`` with the
    grid's mode and seed as ``data.vote_budget``) and ``updates`` (dotted keys), resolved once here
    and passed down."""
    budget = {}
    if spec.get("budget") is not None:
        draw = spec.get("vote_budget") or {}
        budget = {"data.vote_budget.k": int(spec["budget"]), "data.vote_budget.mode": draw.get("mode"),
                  "data.vote_budget.seed": draw.get("seed")}
    return load_config(Path(spec["config"]), None,
                       **{"train.num_threads": spec.get("threads") or None, **budget, **updates})


def _statuses(runs: Path, members: dict) -> list:
    """PackResult-like outcomes read from the members' run.json (after a pack died)."""
    from lczldl.training.packed import PackResult  # deferred: torch, lightning

    out = []
    for regime, seed in members:
        info = read_run_info(run_dir(runs, regime, seed)) or {}
        out.append(PackResult(regime, seed, run_dir(runs, regime, seed), info.get("status") or "missing",
                              error=info.get("error")))
    return out


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Predictions on val/test and plain metrics for one run."""
    ev.evaluate_run(Path(spec["run"]), _evaluation(spec), progress=False)
    return {"run": spec["run"]}


def _evaluation(spec: dict[str, Any]) -> Any:
    """The study's resolved evaluation settings (EvaluationConfig) its runner put in the spec."""
    return EvaluationConfig(**spec["evaluation"])


def calibrate(spec: dict[str, Any]) -> dict[str, Any]:
    """Temperature scaling, MC dropout and the beyond-the-paper files for one evaluated run."""
    ev.calibrate_run(Path(spec["run"]), _evaluation(spec), progress=False)
    return {"run": spec["run"]}


def aggregate(spec: dict[str, Any]) -> dict[str, Any]:
    """Ensembles per regime and the summary tables over the runs that finished."""
    ev.aggregate_runs(Path(spec["runs"]), _evaluation(spec), out=Path(spec.get("out") or spec["study"]),
                      progress=False)
    return {"runs": spec["done_runs"]}


def budget(spec: dict[str, Any]) -> dict[str, Any]:
    """The vote-budget table over k (STUDY/budget/budget.csv) from the runs that finished."""
    grid = spec["vote_budget"]
    path = write_budget_table(Path(spec["study"]), Path(spec["store"]), grid["k"],
                              VoteBudgetConfig(mode=grid["mode"], seed=grid["seed"]), _evaluation(spec))
    return {"table": str(path)}


def report(spec: dict[str, Any]) -> dict[str, Any]:
    """Figures and report.html / report.md from the saved files."""
    from lczldl.viz.report import redraw_study  # deferred: matplotlib

    redraw_study(Path(spec["study"]), intervals=bool(spec.get("intervals", False)),
                 pdf=bool(spec.get("figures_pdf", True)))
    return {}
