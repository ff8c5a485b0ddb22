"""Packed training speed (issues 11, 19): solo vs packs of K members, by precision, eager vs CUDA
graph, on the synthetic twin's patches; and the real loops compared on CPU. Runs on CPU (small by
default) and on CUDA.

    python benchmarks/bench_gpu.py [--device auto|cpu|cuda] [--store STORE] [--packs 4,20]
        [--precisions 32-true,32-tf32,bf16-mixed] [--steps N] [--repeats 3] [--threads 2]
        [--memory-formats channels_last,contiguous] [--loop] [--no-steps] [--loop-k 4]
        [--loop-epochs 3] [--loop-n-train 1280]

Step table: the packed training step of ``lczldl.training.packed_engine.PackEngine`` (the paper's
model initialised as Sen2LCZ initialises itself, one seed per member; batch 64 per member, each
member its own batch of the twin's training patches gathered on the device, its distribution
target, KL loss, Nadam) on the training split of ``--store`` (default: the small twin, synthesised
and prepared into a temporary folder). A solo run is a pack of 1. Rows: eager (Nadam with its step
counters on the host, as eager training runs it) and, where CUDA is, the step captured in a CUDA
graph (capturable Nadam, as graphed training runs it). torch's backends are set for each row by
``training.fastpath.backend_settings``, exactly as a run of that ``train.precision`` (and the
default ``train.deterministic: true``) sets them. "plain Sen2LCZ step" is the model, its loss and
Nadam on the same resident data without packing (not the Lightning loop: that is
bench_training.py). Each row reports samples/s aggregated over the members (median of
interleaved repeats, min..max) and the mean training loss of its first (warm-up) and last repeat,
which must be finite and falling. Whole-pipeline wall times (validation, checkpoints,
re-captures, evaluation) are gpu_check.py's.

Loop table (``--loop``, the CPU decision "pack by default or not"): K runs of the real loops on a
synthetic store (``bench_training.write_store``), each configuration as the study would run it, in
fresh processes: the Lightning loop (``train_run`` with ``train.engine=lightning``) one run after
the other with all threads, two runs at a time with one thread each (``lczldl study --workers 2``),
one ``train_pack`` of the K runs with all threads, and two packs of K/2 at once with one thread
each. Reported: wall seconds for the K runs (process start, validation and checkpoints included)
and the training-part samples/s from run.json, aggregated.
Machines here are shared and noisy: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 64
#: what each row trains on: the prepared twin's training split, its vote distributions
TARGET = "distribution"


def twin_store(root: Path, size: str = "small") -> tuple[Path, dict[str, float]]:
    """Synthesise the twin of ``size`` (seed 0) and prepare it into ``root``/store; the store and
    the seconds each step took ({"synth": s, "prepare": s}). Reused when already there."""
    from lczldl.data.prepare import prepare_store
    from lczldl.data.store import is_prepared_store
    from lczldl.data.synth import synthesize

    raw, store, seconds = root / f"raw-{size}", root / f"store-{size}", {}
    if not is_prepared_store(store):
        t0 = time.perf_counter()
        synthesize(raw, seed=0, size=size, progress=False)
        seconds["synth"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prepare_store(raw, store)
        seconds["prepare"] = time.perf_counter() - t0
    return store, seconds


def device_splits(store: Path, device) -> tuple[Any, Any]:
    """The store's train and val splits resident on ``device`` (uint16 pixels, distribution targets)."""
    from lczldl.data.store import open_store
    from lczldl.training.packed_engine import load_split

    s = open_store(store)
    return tuple(load_split(s, split, None, [TARGET], 0.0, device) for split in ("train", "val"))


def train_config(precision: str, overrides: list[str] | None = None):
    """The resolved config a run of ``precision`` would have (defaults otherwise)."""
    from lczldl.config import load_config

    return load_config(None, [f"train.precision={precision}", *(overrides or [])])


def make_engine(splits, device, k: int, precision: str, graphs: bool, fmt: str = "channels_last",
                model_kwargs: dict | None = None, capturable: bool | None = None):
    """A PackEngine of ``k`` fresh members (seeds 0..k-1) on the twin ``splits``, as a run of
    ``precision`` builds it (``capturable``: PackEngine's; None = as a run: with graphs)."""
    import torch

    from lczldl.models.sen2lcz import Sen2LCZ
    from lczldl.training.fastpath import PACK_PRECISIONS
    from lczldl.training.losses import kl_divergence
    from lczldl.training.packed_engine import PackEngine
    from lczldl.training.packed_model import PackedSen2LCZ, member_init_states

    kw = Sen2LCZ(**{**(model_kwargs or {}), "memory_format": fmt}).model_kwargs
    net = PackedSen2LCZ(kw, k, fmt)
    net.load_members(member_init_states(kw, range(k)))
    net = net.to(device)
    net.set_generators([torch.Generator(device=device).manual_seed(i) for i in range(k)])
    train, val = splits
    return PackEngine(net, [kl_divergence] * k, [TARGET] * k, [TARGET] * k, train, val, lr=0.002,
                      optimizer={"eps": 1e-7, "momentum_decay": 4e-3}, bf16=PACK_PRECISIONS[precision],
                      graphs=graphs, capturable=capturable)


class Plain:
    """Reference: the plain Sen2LCZ step (model, KL loss, Nadam; no packing, no Lightning) on the
    same resident data."""

    def __init__(self, splits, device, precision: str, fmt: str = "channels_last",
                 model_kwargs: dict | None = None) -> None:
        import torch

        from lczldl.models.sen2lcz import Sen2LCZ
        from lczldl.training.fastpath import PACK_PRECISIONS
        from lczldl.training.schedule import make_optimizer

        self.k, self.device, self.bf16 = 1, device, PACK_PRECISIONS[precision]
        torch.manual_seed(0)
        self.model = Sen2LCZ(**{**(model_kwargs or {}), "memory_format": fmt}).to(device)
        self.opt = make_optimizer(self.model.parameters(), lr=0.002, eps=1e-7, momentum_decay=4e-3)
        self.train = splits[0]
        self.sum = torch.zeros((), device=device)

    def train_epoch(self, batches, last, lr: float) -> None:
        import torch

        from lczldl.training.losses import kl_divergence
        from lczldl.training.packed_engine import reflectance

        self.model.train()
        self.sum.zero_()
        for idx in batches.to(self.device)[:, 0]:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logp = self.model(reflectance(self.train.images[idx]))
            loss = kl_divergence(logp.float(), self.train.targets[TARGET][idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sum += loss.detach() * len(idx)

    def epoch_losses(self, n: int) -> np.ndarray:
        return np.array([float(self.sum) / n])


def timed_epoch(eng, steps: int, seed: int) -> tuple[float, np.ndarray]:
    """(seconds, mean loss per member) of one 'epoch' of ``steps`` full batches (ends with the
    epoch's host sync)."""
    import torch

    rng = np.random.default_rng(seed)
    batches = torch.from_numpy(rng.integers(0, eng.train.n, (steps, eng.k, BATCH)))
    t0 = time.perf_counter()
    eng.train_epoch(batches, None, lr=0.002)
    losses = eng.epoch_losses(steps * BATCH)
    return time.perf_counter() - t0, losses


def measure_row(eng, steps: int | None, repeats: int, seconds_per_repeat: float = 2.0,
                max_steps: int = 200) -> dict[str, Any]:
    """Warm up (and capture), then ``repeats`` timed epochs of ``steps`` (None: as many as take
    about ``seconds_per_repeat``, 10..``max_steps``). samples/s aggregate over the members."""
    from lczldl.training.packed_engine import WARMUP_STEPS

    _, first = timed_epoch(eng, WARMUP_STEPS + 2, seed=0)
    if steps is None:
        s, _ = timed_epoch(eng, 5, seed=1)
        steps = int(min(max_steps, max(10, seconds_per_repeat / max(s / 5, 1e-6))))
    rates, last = [], first
    for rep in range(repeats):
        s, last = timed_epoch(eng, steps, seed=rep + 2)
        rates.append(eng.k * BATCH * steps / s)
    finite = bool(np.isfinite(first).all() and np.isfinite(last).all())
    return {"samples_per_s": statistics.median(rates), "min": min(rates), "max": max(rates), "steps": steps,
            "repeats": repeats, "loss_first": float(np.mean(first)), "loss_last": float(np.mean(last)),
            "loss_finite": finite, "loss_falling": finite and float(np.mean(last)) < float(np.mean(first)),
            "graphed": bool(getattr(eng, "graphs", False))}


def step_rows(splits, device, packs: list[int], precisions: list[str], graph_modes: list[bool],
              fmt: str = "channels_last", steps: int | None = None, repeats: int = 3,
              model_kwargs: dict | None = None, plain: bool = True, deadline: float = math.inf,
              overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (precision, plain / pack size, graphs), each under the backend settings of a run
    of that precision; rows not started before ``deadline`` (perf_counter) are marked skipped."""
    from lczldl.training.fastpath import backend_settings

    rows = []
    for precision in precisions:
        cfg = train_config(precision, overrides)
        cases = ([(0, False)] if plain else []) + [(k, g) for k in packs for g in graph_modes]
        for k, graphs in cases:
            row: dict[str, Any] = {"case": "plain Sen2LCZ step" if k == 0 else ("solo" if k == 1 else f"pack of {k}"),
                                   "members": max(k, 1), "precision": precision, "graphs": graphs,
                                   "memory_format": fmt}
            if time.perf_counter() > deadline:
                rows.append({**row, "skipped": "time budget"})
                continue
            with backend_settings(cfg.train, device.type):
                eng = Plain(splits, device, precision, fmt, model_kwargs) if k == 0 else make_engine(
                    splits, device, k, precision, graphs, fmt, model_kwargs)
                row.update(measure_row(eng, steps, repeats))
            if graphs and not row["graphed"]:
                row["note"] = "graph capture failed or unavailable: trained eagerly"
            rows.append(row)
            del eng
    return rows


def step_table(args: argparse.Namespace, device) -> None:
    with tempfile.TemporaryDirectory() as td:
        store = Path(args.store) if args.store else twin_store(Path(td), "small")[0]
        splits = device_splits(store, device)
        rows = []
        for fmt in args.memory_formats.split(","):
            rows += step_rows(splits, device, [1, *[int(x) for x in args.packs.split(",")]],
                              args.precisions.split(","), [False, True] if device.type == "cuda" else [False],
                              fmt, args.steps, args.repeats)
    print(f"{'case':<40} | {'samples/s':>10} | {'min..max':>19} | {'loss first -> last':>20}")
    for r in rows:
        name = f"{r['case']} {'graphed' if r['graphs'] else 'eager'} {r['precision']} {r['memory_format']}"
        loss = f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}" + ("" if r["loss_falling"] else " (!)")
        print(f"{name:<40} | {r['samples_per_s']:>10,.0f} | {r['min']:>8,.0f}..{r['max']:<9,.0f}| {loss:>20}"
              + (f"  {r['note']}" if "note" in r else ""))


def _proc(code: str, threads: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"benchmark child failed:\n{err[-3000:]}")


def _cfg_code(threads: int, epochs: int, engine: str) -> str:
    return (f"from lczldl.config import load_config\n"
            f"cfg = load_config(None, ['train.patience=1000', 'train.engine={engine}', "
            f"'train.num_threads={threads}'], **{{'train.regime': 'dist', 'train.max_epochs': {epochs}}})\n")


def _solo_code(store: Path, out: Path, seed: int, threads: int, epochs: int) -> str:
    return (f"from pathlib import Path\nfrom lczldl.training.run import train_run\n{_cfg_code(threads, epochs, 'lightning')}"
            f"train_run(Path({str(store)!r}), {seed}, Path({str(out)!r}), cfg, progress=False)\n")


def _speed(runs: list[Path]) -> float:
    return sum(json.loads((r / "run.json").read_text())["train_samples_per_second"] for r in runs)


def _pack_code(store: Path, out: Path, seeds: list[int], threads: int, epochs: int) -> str:
    return (f"from pathlib import Path\nfrom lczldl.training.packed import train_pack\n{_cfg_code(threads, epochs, 'packed')}"
            f"train_pack(Path({str(store)!r}), [('dist', s) for s in {seeds}], Path({str(out)!r}), cfg)\n")


def loop_table(args: argparse.Namespace) -> None:
    from bench_training import write_store

    k, threads, epochs = args.loop_k, args.threads, args.loop_epochs
    half = list(range(k // 2)), list(range(k // 2, k))
    names = ("Lightning loop, runs one after the other", "Lightning loop, --workers 2 (1 thread each)",
             f"train_pack, one pack of {k}", f"train_pack, 2 packs of {k // 2} at once (1 thread each)")
    rows: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as td:
        store = write_store(Path(td) / "store", args.loop_n_train, max(64, args.loop_n_train // 5))
        for rep in range(args.repeats):
            out = {n: Path(td) / f"{i}-{rep}" for i, n in enumerate(names)}
            waves = {  # name -> waves, each a list of (child code, threads) started together
                names[0]: [[(_solo_code(store, out[names[0]], x, threads, epochs), threads)] for x in range(k)],
                names[1]: [[(_solo_code(store, out[names[1]], x, 1, epochs), 1) for x in range(s, min(s + 2, k))]
                           for s in range(0, k, 2)],
                names[2]: [[(_pack_code(store, out[names[2]], list(range(k)), threads, epochs), threads)]],
                names[3]: [[(_pack_code(store, out[names[3]], h, 1, epochs), 1) for h in half]]}
            for name in names:
                t0 = time.perf_counter()
                for wave in waves[name]:
                    _wait([_proc(code, n) for code, n in wave])
                total = _speed([out[name] / "dist" / f"seed{s}" for s in range(k)])
                concurrent = {names[0]: 1, names[1]: 2, names[2]: k, names[3]: k}[name]
                rows[name].append((time.perf_counter() - t0, total * concurrent / k))
    print(f"\n# loops: {k} runs (dist, seeds 0..{k - 1}), {epochs} epochs, n_train {args.loop_n_train}, "
          f"{threads} threads, median of {args.repeats} interleaved repeats")
    print(f"{'configuration':<52} | {'wall s (K runs)':>15} | {'train samples/s (aggregate)':>27}")
    for name, vals in rows.items():
        walls, speeds = [v[0] for v in vals], [v[1] for v in vals]
        print(f"{name:<52} | {statistics.median(walls):>15.1f} | {statistics.median(speeds):>27,.0f}")
    print("# aggregate: the training-part rates (run.json) of the runs that train at the same time, summed; "
          "a pack's members share its epoch, so a pack counts K x a member's rate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--store", default=None, help="prepared store (default: the small twin, made here)")
    ap.add_argument("--packs", default="4,20")
    ap.add_argument("--precisions", default="32-true,32-tf32,bf16-mixed")
    ap.add_argument("--memory-formats", default="channels_last")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default: ~2 s worth)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loop", action="store_true", help="also compare the real loops (CPU decision)")
    ap.add_argument("--no-steps", action="store_true", help="skip the step table")
    ap.add_argument("--loop-k", type=int, default=4)
    ap.add_argument("--loop-epochs", type=int, default=3)
    ap.add_argument("--loop-n-train", type=int, default=1280)
    args = ap.parse_args()

    import torch

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"# bench_gpu: {name}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, threads {args.threads}, batch {BATCH} per member, {args.repeats} repeats")
    if not args.no_steps:
        step_table(args, device)
    if args.loop:
        loop_table(args)


if __name__ == "__main__":
    main()
