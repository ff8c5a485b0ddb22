"""Everything issue 19 asks of the first GPU lent to the project, in one call (< 5 min on one H100).

    python benchmarks/gpu_check.py --out DIR [--dry-run] [--budget-s 280] [--full-demo]
                                   [--sections env,twin,speed,graph,isolation,evaluation,checkpoint,demo]

Writes DIR/gpu_check.json and DIR/gpu_check.md (scratch files under DIR/work). Sections:

- env: device, driver, torch, CUDA and cuDNN versions.
- twin: the small twin synthesised and prepared (the patches every later section trains on).
- speed: samples/s of one run and a pack of 20, in fp32 (32-true: TF32 off), TF32 (32-tf32) and
  bf16 (bf16-mixed), graphs off and on, each with its training loss finite and falling
  (``bench_gpu.step_rows``: the backends set as real runs set them).
- graph: graphed against eager weights after one graphed step, deterministic algorithms on
  (within float tolerance), and after more steps against the seed spread (two eager runs whose
  dropout generators differ: Nadam's first steps amplify float-order noise).
- isolation: a member poisoned with NaN weights in a pack of 3: the other members' weights and
  validation losses equal those of the clean pack (cuDNN's grouped kernels never mix groups).
- evaluation: deterministic predictions on the device against CPU (float tolerance) and the MC
  dropout mean against CPU's within Monte Carlo error; seconds per 1,000 images each way.
- checkpoint: seconds to serialise and commit one member's checkpoint (fsync included), and the
  share of an epoch they take for a pack of 20 (upper bound from the pack's training rate; the
  demo's measured epoch where it ran).
- demo: ``lczldl demo --profile paper``'s pipeline (its config) on the small twin with
  ``train.max_epochs`` cut to fit the call: wall time per phase (synth, prepare, train, evaluate,
  figures), each phase's rate and the projection to the paper profile (medium twin, 10x the
  patches; training up to 300 epochs), labelled as a projection; the per-regime ce_distr, ECE and
  over-confidence of those short runs. ``--full-demo`` runs the paper profile itself, uncut.

``--dry-run``: the same script at toy sizes on CPU (tiny twin, tiny network, packs of 1 and 2, a
reduced 2-run study), with the CUDA graph API replaced by the CPU stand-in of
tests/training/cuda_standin.py, so CI runs every code path. A section that raises is recorded
(``errors``) and the others go on; the exit status is 1 when any did. Run it from a source
checkout with ``PYTHONPATH=src`` (docs/benchmarks.md, "GPU check").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import bench_gpu
import numpy as np
from bench_gpu import BATCH
from gpu_check_report import markdown

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("env", "twin", "speed", "graph", "isolation", "evaluation", "checkpoint", "demo")
#: (real, dry-run) sizes
SIZE = {
    "twin": ("small", "tiny"), "packs": ((1, 20), (1, 2)), "model": ({}, {"depth": 5, "width": 2}),
    "repeats": (3, 1), "steps": (None, 2), "graph_steps": (50, 3), "eval_images": (2048, 64),
    "demo_epochs": (3, 1), "ckpt_members": (20, 2),
}
PRECISIONS = ("32-true", "32-tf32", "bf16-mixed")
PAPER_MAX_EPOCHS = 300


class Check:
    """The run's settings, deadline and results."""

    def __init__(self, out: Path, dry: bool, budget_s: float) -> None:
        import torch

        self.out, self.dry, self.t0 = out, dry, time.perf_counter()
        self.deadline = self.t0 + budget_s
        self.work = out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
        self.graphs = self.device.type == "cuda"
        self.results: dict[str, Any] = {"dry_run": dry, "budget_s": budget_s, "errors": {},
                                        "started": datetime.now().isoformat(timespec="seconds")}

    def size(self, key: str) -> Any:
        return SIZE[key][1 if self.dry else 0]

    def left(self) -> float:
        return self.deadline - time.perf_counter()


@contextlib.contextmanager
def standin_graphs(check: Check):
    """Dry run: CUDA graphs through the CPU stand-in (capturable Nadam allowed on CPU)."""
    if not check.dry:
        yield
        return
    try:
        sys.path.insert(0, str(ROOT))
        from tests.training.cuda_standin import StandIn, capturable_on_cpu
    except ImportError:                      # not a source checkout: no graphed rows
        yield
        return
    from lczldl.training import packed_engine

    original, standin = packed_engine.graph_api, StandIn()
    packed_engine.graph_api = lambda device: standin
    check.graphs = True
    try:
        with capturable_on_cpu():
            yield
    finally:
        packed_engine.graph_api = original


# ---------------------------------------------------------------------------------- sections
def env(check: Check) -> dict[str, Any]:
    import torch

    import lczldl

    cuda = check.device.type == "cuda"
    driver = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip() or None
    return {"device": torch.cuda.get_device_name(check.device) if cuda else (platform.processor() or platform.machine()),
            "memory_gib": round(torch.cuda.get_device_properties(check.device).total_memory / 2**30, 1) if cuda else None,
            "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "python": platform.python_version(), "lczldl": lczldl.__version__, "cpus": os.cpu_count(),
            "graphs": "CUDA" if cuda else ("CPU stand-in" if check.graphs else "none")}


def twin(check: Check) -> dict[str, Any]:
    store, seconds = bench_gpu.twin_store(check.work, check.size("twin"))
    manifest = json.loads((store / "manifest.json").read_text())
    check.store = store
    return {"size": check.size("twin"), "store": str(store), **{f"{k}_s": round(v, 2) for k, v in seconds.items()},
            "patches": {s: int(v["n"]) for s, v in manifest["splits"].items()}}


def speed(check: Check) -> list[dict[str, Any]]:
    splits = bench_gpu.device_splits(check.store, check.device)
    rows = bench_gpu.step_rows(splits, check.device, list(check.size("packs")), list(PRECISIONS),
                               [False, True] if check.graphs else [False], steps=check.size("steps"),
                               repeats=check.size("repeats"), model_kwargs=check.size("model"), plain=False,
                               deadline=check.deadline - 150)
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def _states(eng) -> dict[str, Any]:
    return {k: v.detach().float().cpu() for k, v in eng.net.state_dict().items() if v.is_floating_point()}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _batches(eng, steps: int, seed: int):
    import torch

    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, eng.train.n, (steps, eng.k, BATCH)))


def graph(check: Check) -> dict[str, Any]:
    if not check.graphs:
        return {"skipped": "no graph API on this device"}
    from lczldl.training.fastpath import backend_settings
    from lczldl.training.packed_engine import WARMUP_STEPS

    splits = bench_gpu.device_splits(check.store, check.device)
    cfg = bench_gpu.train_config("32-true")
    with backend_settings(cfg.train, check.device.type):
        engines = {}
        for name, graphs, gen_offset in (("graphed", True, 0), ("eager", False, 0), ("eager, other dropout", False, 100)):
            eng = bench_gpu.make_engine(splits, check.device, 2, "32-true", graphs, model_kwargs=check.size("model"),
                                        capturable=True)
            for i, g in enumerate(eng._generators()):
                g.manual_seed(i + gen_offset)
            engines[name] = eng
        first = _batches(engines["eager"], WARMUP_STEPS + 1, seed=0)
        for eng in engines.values():                  # warm-up (eager), then one graphed step
            eng.train_epoch(first, None, 0.002)
        one = {n: _states(e) for n, e in engines.items()}
        more = _batches(engines["eager"], check.size("graph_steps"), seed=1)
        for eng in engines.values():
            eng.train_epoch(more, None, 0.002)
        later = {n: _states(e) for n, e in engines.items()}
    d1 = _max_diff(one["graphed"], one["eager"])
    scale = max(float(v.abs().max()) for v in one["eager"].values())
    dn, spread = _max_diff(later["graphed"], later["eager"]), _max_diff(later["eager"], later["eager, other dropout"])
    return {"graphed": engines["graphed"].graphs, "max_abs_diff_after_one_graphed_step": d1, "weight_scale": scale,
            "within_tolerance_after_one_step": d1 <= 1e-5 * scale, "later_steps": check.size("graph_steps"),
            "max_abs_diff_later": dn, "seed_spread_later": spread, "below_seed_spread": dn < spread}


def isolation(check: Check) -> dict[str, Any]:
    import torch

    from lczldl.training.fastpath import backend_settings

    splits = bench_gpu.device_splits(check.store, check.device)
    cfg = bench_gpu.train_config("32-true")
    out = {}
    with backend_settings(cfg.train, check.device.type):
        for name in ("clean", "poisoned"):
            eng = bench_gpu.make_engine(splits, check.device, 3, "32-true", check.graphs, model_kwargs=check.size("model"))
            if name == "poisoned":
                w = eng.net.net.blocks[0][0][0].weight
                with torch.no_grad():
                    w[w.shape[0] // 3: 2 * w.shape[0] // 3] = float("nan")    # member 1's first conv
            eng.train_epoch(_batches(eng, 6, seed=0), None, 0.002)
            loss, _ = eng.validate()
            out[name] = (eng.net.member_states(), loss, eng.graphs)
    (clean, lc, _), (bad, lb, graphed) = out["clean"], out["poisoned"]
    diffs = [max(float((clean[m][k].float() - bad[m][k].float()).abs().max()) for k in clean[m]
                 if clean[m][k].is_floating_point()) for m in (0, 2)]
    poisoned_nan = not all(torch.isfinite(v).all() for v in bad[1].values() if v.is_floating_point())
    return {"graphed": graphed, "members_0_2_max_abs_diff": diffs, "member_1_non_finite": poisoned_nan,
            "val_loss_clean": lc.tolist(), "val_loss_poisoned": lb.tolist(),
            "isolated": poisoned_nan and max(diffs) == 0.0 and bool(np.isfinite(lb[[0, 2]]).all())}


def evaluation(check: Check) -> dict[str, Any]:
    import torch

    from lczldl.data.store import open_store
    from lczldl.evaluation.predictor import Predictor, predict_log_probs
    from lczldl.models.sen2lcz import Sen2LCZ
    from lczldl.training.fastpath import tf32_settings

    test = open_store(check.store).split("test")
    n = min(check.size("eval_images"), test.n)
    images = torch.from_numpy(test.image.read(np.arange(n)).astype(np.float32) / 10000.0)
    torch.manual_seed(0)
    cpu_model = Sen2LCZ(**check.size("model")).eval()
    dev_model = Sen2LCZ(**check.size("model")).eval()
    dev_model.load_state_dict(cpu_model.state_dict())
    dev_model = dev_model.to(check.device)
    batches = lambda: (images[i:i + 512] for i in range(0, n, 512))  # noqa: E731
    passes, out = 20, {}
    with tf32_settings("32-true"):
        for name, model, pass_batch in (("cpu", cpu_model, 1), ("device", dev_model, None if not check.dry else passes)):
            t0 = time.perf_counter()
            out[f"{name}_log_probs"] = predict_log_probs(model, batches())
            out[f"{name}_predict_s_per_1000"] = (time.perf_counter() - t0) * 1000 / n
            t0 = time.perf_counter()
            out[f"{name}_mc"] = Predictor([model], mc_passes=passes, pass_batch=pass_batch).predict(images, 512, seed=0)
            out[f"{name}_mc_s_per_1000"] = (time.perf_counter() - t0) * 1000 / n
        other = Predictor([cpu_model], mc_passes=passes, pass_batch=1).predict(images, 512, seed=1)
    d = float(np.abs(out["cpu_log_probs"] - out["device_log_probs"]).max())
    mc_diff = float(np.abs(out["cpu_mc"]["probs"] - out["device_mc"]["probs"]).mean())
    spread = float(np.abs(out["cpu_mc"]["probs"] - other["probs"]).mean())
    return {"images": n, "mc_passes": passes, "max_abs_log_prob_diff": d, "deterministic_equal": d <= 1e-4,
            "mc_mean_abs_diff": mc_diff, "mc_seed_spread": spread, "mc_within_mc_error": mc_diff < 2 * spread,
            **{k: round(v, 4) for k, v in out.items() if k.endswith("per_1000")}}


def checkpoint(check: Check) -> dict[str, Any]:
    import torch

    from lczldl.models.sen2lcz import Sen2LCZ
    from lczldl.training.packed_ckpt import commit, to_bytes
    from lczldl.training.schedule import make_optimizer

    model = Sen2LCZ(**check.size("model"))
    opt = make_optimizer(model.parameters(), lr=0.002, eps=1e-7, momentum_decay=4e-3)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    ckpt = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "optimizer_states": [opt.state_dict()], "epoch": 0}
    k = check.size("ckpt_members")
    folder = Path(tempfile.mkdtemp(dir=check.work))
    t0 = time.perf_counter()
    data = [to_bytes(ckpt) for _ in range(k)]
    serialise = time.perf_counter() - t0
    t0 = time.perf_counter()
    commit(folder, {folder / f"m{i}" / "last.ckpt": d for i, d in enumerate(data)}, "check")
    write = time.perf_counter() - t0
    per = (serialise + write) / k
    result = {"members": k, "mb_per_checkpoint": round(len(data[0]) / 2**20, 2),
              "serialise_s_per_member": round(serialise / k, 4), "write_fsync_s_per_member": round(write / k, 4),
              "per_member_s": round(per, 4)}
    pack = next((r for r in check.results.get("speed", []) if r.get("members") == k and r.get("graphs") == check.graphs
                 and r.get("precision") == "32-true" and "samples_per_s" in r), None)
    if pack:
        n_train = check.results["twin"]["patches"]["train"]
        train_s = n_train * k / pack["samples_per_s"]
        result.update({"epoch_train_s_from_rate": round(train_s, 3), "share_upper_bound": round(per * k / (per * k + train_s), 4),
                       "share_upper_bound_with_best_too": round(2 * per * k / (2 * per * k + train_s), 4)})
    return result


def yaml_workers(config: Path) -> int:
    import yaml

    return int((yaml.safe_load(config.read_text()).get("study") or {}).get("workers", 1))


def twin_patches(size: str) -> int:
    """Patches of the twin of ``size`` (data.synth.SIZES per European / addon city)."""
    from lczldl.constants import ADDON_CITIES, EUROPEAN_CITIES
    from lczldl.data.synth import SIZES

    city, addon = SIZES[size]
    return city * len(EUROPEAN_CITIES) + addon * len(ADDON_CITIES)


def _demo_config(check: Check, epochs: int) -> Path:
    import yaml

    from lczldl.study.demo import demo_config

    cfg = yaml.safe_load(demo_config("paper").read_text())
    cfg.setdefault("train", {})["max_epochs"] = epochs
    if check.dry:
        cfg["model"] = {"depth": 5, "width": 2}
        # the script's code paths, not the evaluation's extras (tested on their own)
        cfg["evaluation"] = {"mc_passes": 2, "conformal": False, "selective": False, "vote_conformal": False}
        # 2 workers: one torch thread per unit on the 2-core CI machine (a thread share of 2
        # spin-waits on shared cores)
        cfg["study"].update({"regimes": ["dist"], "seeds": "0", "workers": 2, "figures_pdf": False})
    path = check.work / f"demo-{epochs}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _phases(study: Path) -> dict[str, dict[str, float]]:
    """Per phase (train / evaluate / figures) from the unit markers: ``unit_s`` the units' wall
    seconds summed, ``span_s`` first start to last end (phases interleave: the scheduler evaluates
    a finished run while others train), ``units`` how many."""
    from lczldl.layout import STUDY_UNITS

    groups = {"train": ("train", "pack"), "evaluate": ("evaluate", "calibrate"), "figures": ("aggregate", "report")}
    out: dict[str, dict[str, float]] = {}
    for path in (study / STUDY_UNITS).glob("*.json"):
        m = json.loads(path.read_text())
        if m.get("status") != "done" or "finished" not in m or m.get("wall_s") is None or m.get("result", {}).get("pack"):
            continue                                   # (a pack's members: its own marker counts)
        end, wall = datetime.fromisoformat(m["finished"]).timestamp(), float(m["wall_s"])
        for phase, kinds in groups.items():
            if m.get("kind") in kinds:
                p = out.setdefault(phase, {"unit_s": 0.0, "start": end - wall, "end": end, "units": 0})
                p["unit_s"] += wall
                p["units"] += 1
                p["start"], p["end"] = min(p["start"], end - wall), max(p["end"], end)
    return {k: {"unit_s": round(v["unit_s"], 1), "span_s": round(v["end"] - v["start"], 1), "units": v["units"]}
            for k, v in out.items()}


def demo(check: Check, full: bool) -> dict[str, Any]:
    from rich.console import Console

    from lczldl.study.demo import KEY_METRICS, key_comparison, read_summary
    from lczldl.study.runner import run_study

    quiet = Console(file=io.StringIO())
    if full:
        store, seconds = bench_gpu.twin_store(check.work, "medium")
        config, study = _demo_config(check, PAPER_MAX_EPOCHS), check.work / "demo-full"
    else:
        if check.left() < 100 and not check.dry:
            return {"skipped": f"time budget ({check.left():.0f} s left)"}
        store, seconds = check.store, {k[:-2]: v for k, v in check.results["twin"].items() if k.endswith("_s")}
        config, study = _demo_config(check, check.size("demo_epochs")), check.work / "demo"
    t0 = time.perf_counter()
    run_study(data=store, out=study, config=config, progress=False, console=quiet)
    wall = time.perf_counter() - t0
    phases = {**{k: {"unit_s": round(v, 1), "span_s": round(v, 1), "units": 1} for k, v in seconds.items()},
              **_phases(study)}
    workers = yaml_workers(config)
    runs = sorted((study / "runs").glob("*/seed*/run.json"))
    info = json.loads(runs[0].read_text())
    epoch_s = info["wall_time_s"] / max(info["epochs"], 1)
    metrics = {r: {k: m.get(k) for k in KEY_METRICS} for r, m in key_comparison(read_summary(study / "summary.csv")).items()}
    out = {"profile": "paper" if full else f"paper config, {check.size('twin')} twin, max_epochs {check.size('demo_epochs')}",
           "wall_s": round(wall, 1), "phases_s": phases, "runs": len(runs), "epochs": info["epochs"],
           "pack_epoch_wall_s": round(epoch_s, 2), "member_train_samples_per_s": info.get("train_samples_per_second"),
           "metrics": metrics}
    if not full:
        ratio = twin_patches("medium") / twin_patches(check.size("twin"))
        scaled = lambda phase, n=1: round(phases[phase]["unit_s"] * ratio / n) if phase in phases else None  # noqa: E731
        out["projection"] = {
            "label": f"PROJECTION from the rates measured above (the medium twin has {ratio:.3g}x the patches "
                     f"of the {check.size('twin')} twin; every phase but figures scales with them; evaluation "
                     f"units run {workers} at a time)",
            "synth_s": scaled("synth"), "prepare_s": scaled("prepare"), "train_s_per_epoch": round(epoch_s * ratio, 1),
            "train_s_at_300_epochs": round(epoch_s * ratio * PAPER_MAX_EPOCHS),
            "evaluate_s": scaled("evaluate", workers),
            "figures_s": phases["figures"]["unit_s"] if "figures" in phases else None,
            "note": "early stopping (patience 20) ends most runs well before 300 epochs; the epochs actually "
                    "trained are unknown until the profile runs (--full-demo)"}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on CPU (CI)")
    ap.add_argument("--budget-s", type=float, default=280.0, help="wall-time budget of the call")
    ap.add_argument("--full-demo", action="store_true", help="run the paper profile uncut (long)")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1 if args.dry_run else min(8, os.cpu_count() or 1))
    check = Check(args.out, args.dry_run, args.budget_s)
    wanted = args.sections.split(",")
    if "twin" not in wanted and set(wanted) - {"env", "checkpoint"}:
        wanted.insert(0, "twin")
    with standin_graphs(check):
        for name in [s for s in SECTIONS if s in wanted]:
            t0 = time.perf_counter()
            try:
                fn = globals()[name]
                check.results[name] = fn(check, args.full_demo) if name == "demo" else fn(check)
            except Exception as exc:  # noqa: BLE001 - recorded, the other sections go on
                check.results["errors"][name] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            check.results.setdefault("section_s", {})[name] = round(time.perf_counter() - t0, 1)
            print(f"gpu_check: {name} done in {time.perf_counter() - t0:.1f} s "
                  f"({check.left():.0f} s of the budget left)", flush=True)
    check.results["wall_s"] = round(time.perf_counter() - check.t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(check.results, indent=2, default=str))
    (args.out / "gpu_check.md").write_text(markdown(check.results))
    print(f"gpu_check: {args.out / 'gpu_check.json'}, {args.out / 'gpu_check.md'}"
          + (f"; errors in {', '.join(check.results['errors'])}" if check.results["errors"] else ""))
    return 1 if check.results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
