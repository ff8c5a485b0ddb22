"""Packed training speed (issue 11): solo vs packs of K members, fp32 / bf16, eager vs CUDA graph,
and the projected wall time of the paper's grid. Runs on CPU (small by default) and on CUDA.

    python benchmarks/bench_gpu.py [--device auto|cpu|cuda] [--packs 4,20] [--precisions fp32,bf16]
        [--steps N] [--repeats 3] [--threads 2] [--memory-formats channels_last,contiguous]
        [--loop] [--no-steps] [--loop-k 4] [--loop-epochs 3] [--loop-n-train 1280]

Step table: the packed training step of ``lczldl.training.packed_engine.PackEngine`` (the paper's
model, batch 64 per member, each member its own batch gathered from uint16 pixels resident on the
device, Nadam, per-member loss) on synthetic data; a solo run is a pack of 1, and "plain Sen2LCZ
step" is the reference without packing machinery (the model, its loss and Nadam on the same
resident data). Rows: eager, and on CUDA the step captured in a CUDA graph ("graphed"; n/a on CPU). samples/s is the aggregate over
the members (median of interleaved repeats, min..max); the projection is the paper's grid
(4 regimes x 5 seeds x 125,000 training patches x 40 epochs = 100 M training samples) at that
rate, training steps only (validation and checkpoints excluded).

Loop table (``--loop``, the CPU decision "pack by default or not"): K runs of the real loops on a
synthetic store (``bench_training.write_store``), each configuration as the study would run it, in
fresh processes: today's loop (``train_run``) one run after the other with all threads, today's
loop with two runs at a time and one thread each (``lczldl study --workers 2``), one
``train_pack`` of the K runs with all threads, and two packs of K/2 at once with one thread each. Reported: wall seconds for the K runs (process start,
validation and checkpoints included) and the training-part samples/s from run.json, aggregated.
Machines here are shared and noisy: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRID_SAMPLES = 4 * 5 * 125_000 * 40
BATCH = 64


def _engine(device, k: int, n: int, precision: str, graphs: bool, fmt: str):
    import torch

    from lczldl.models.sen2lcz import Sen2LCZ
    from lczldl.training.losses import kl_divergence
    from lczldl.training.packed_engine import DeviceSplit, PackEngine
    from lczldl.training.packed_model import PackedSen2LCZ

    g = torch.Generator().manual_seed(0)
    net = PackedSen2LCZ(Sen2LCZ().model_kwargs, k, fmt).to(device)
    net.set_generators([torch.Generator(device=device).manual_seed(i) for i in range(k)])
    images = torch.randint(0, 4000, (n, 10, 32, 32), generator=g, dtype=torch.int16)
    target = torch.distributions.Dirichlet(torch.ones(10)).sample((n,))
    split = DeviceSplit(images.to(device), torch.zeros(n, dtype=torch.int64, device=device),
                        {"distribution": target.to(device)})
    return PackEngine(net, [kl_divergence] * k, ["distribution"] * k, ["distribution"] * k, split, split,
                      lr=0.002, optimizer={"eps": 1e-7, "momentum_decay": 4e-3}, bf16=precision == "bf16",
                      graphs=graphs)


class _Plain:
    """Reference: the plain Sen2LCZ step (no packing machinery) on the same resident data."""

    def __init__(self, device, n: int, precision: str, fmt: str) -> None:
        import torch

        from lczldl.models.sen2lcz import Sen2LCZ
        from lczldl.training.schedule import make_optimizer

        self.k, self.n, self.device, self.bf16 = 1, n, device, precision == "bf16"
        self.model = Sen2LCZ(memory_format=fmt).to(device)
        self.opt = make_optimizer(self.model.parameters(), capturable=device.type == "cuda")
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 4000, (n, 10, 32, 32), generator=g, dtype=torch.int16).to(device)
        self.target = torch.distributions.Dirichlet(torch.ones(10)).sample((n,)).to(device)

    def train_epoch(self, batches, last, lr: float) -> None:
        import torch

        from lczldl.training.losses import kl_divergence
        from lczldl.training.packed_engine import reflectance

        self.sum = torch.zeros((), device=self.device)
        for idx in batches.to(self.device)[:, 0]:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logp = self.model(reflectance(self.images[idx]))
            loss = kl_divergence(logp.float(), self.target[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sum += loss.detach()

    def epoch_losses(self, n: int) -> float:
        return float(self.sum) / n


def _epoch(eng, steps: int, seed: int) -> float:
    """Seconds of one timed 'epoch' of ``steps`` full batches (ends with the epoch's host sync)."""
    import torch

    rng = np.random.default_rng(seed)
    n = eng.n if isinstance(eng, _Plain) else eng.train.n
    batches = torch.from_numpy(rng.integers(0, n, (steps, eng.k, BATCH)))
    t0 = time.perf_counter()
    eng.train_epoch(batches, None, lr=0.002)
    eng.epoch_losses(1)
    return time.perf_counter() - t0


def step_table(args: argparse.Namespace, device) -> None:
    from lczldl.training.packed_engine import WARMUP_STEPS

    cuda = device.type == "cuda"
    cases = []
    for fmt in args.memory_formats.split(","):
        for precision in args.precisions.split(","):
            cases.append((0, precision, False, fmt))
            for k in [1, *[int(x) for x in args.packs.split(",")]]:
                for graphs in ([False, True] if cuda else [False]):
                    cases.append((k, precision, graphs, fmt))
    times: dict[tuple, list[float]] = {c: [] for c in cases}
    engines = {}
    for c in cases:                               # build + warm up (and capture) every case first
        engines[c] = (_Plain(device, args.n_train, c[1], c[3]) if c[0] == 0
                      else _engine(device, c[0], args.n_train, c[1], c[2], c[3]))
        _epoch(engines[c], WARMUP_STEPS + 2 if cuda else 1, seed=0)
    for rep in range(args.repeats):               # interleaved repeats
        for c in cases:
            times[c].append(max(c[0], 1) * BATCH * args.steps / _epoch(engines[c], args.steps, seed=rep + 1))
    print(f"{'case':<28} | {'samples/s':>10} | {'min..max':>17} | {'paper grid (h:mm)':>17}")
    for c in cases:
        k, precision, graphs, fmt = c
        rates = times[c]
        med = statistics.median(rates)
        hours = GRID_SAMPLES / med / 3600
        name = f"{'solo' if k == 1 else f'pack of {k}'} {'graphed' if graphs else 'eager'} {precision}"
        if k == 0:
            name = f"plain Sen2LCZ step {precision}"
        if len(args.memory_formats.split(",")) > 1:
            name += f" {'NHWC' if fmt == 'channels_last' else 'NCHW'}"
        print(f"{name:<28} | {med:>10,.0f} | {min(rates):>8,.0f}..{max(rates):<8,.0f}"
              f"| {int(hours):>13}:{int(hours * 60) % 60:02d}")
        if k == 1 and not cuda:
            print(f"{name.replace('eager', 'graphed'):<28} | {'n/a (CPU)':>10} |")


def _proc(code: str, threads: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"benchmark child failed:\n{err[-3000:]}")


def _solo_code(store: Path, out: Path, seed: int, threads: int, epochs: int) -> str:
    return (f"from pathlib import Path\nfrom lczldl.training.run import train_run\n"
            f"train_run(Path({str(store)!r}), 'dist', {seed}, Path({str(out)!r}), max_epochs={epochs}, "
            f"progress=False, num_threads={threads}, overrides=['train.patience=1000'])\n")


def _speed(runs: list[Path]) -> float:
    return sum(json.loads((r / "run.json").read_text())["train_samples_per_second"] for r in runs)


def _pack_code(store: Path, out: Path, seeds: list[int], threads: int, epochs: int) -> str:
    return (f"from pathlib import Path\nfrom lczldl.training.packed import train_pack\n"
            f"train_pack(Path({str(store)!r}), [('dist', s) for s in {seeds}], Path({str(out)!r}), "
            f"max_epochs={epochs}, overrides=['train.patience=1000', 'train.num_threads={threads}'])\n")


def loop_table(args: argparse.Namespace) -> None:
    from bench_training import write_store

    k, threads, epochs = args.loop_k, args.threads, args.loop_epochs
    half = list(range(k // 2)), list(range(k // 2, k))
    names = ("today's loop, runs one after the other", "today's loop, --workers 2 (1 thread each)",
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
    ap.add_argument("--packs", default="4,20")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--memory-formats", default="channels_last")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat (CPU 3, CUDA 200)")
    ap.add_argument("--n-train", type=int, default=None, help="resident patches (CPU 512, CUDA 25600)")
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
    cuda = device.type == "cuda"
    args.steps = args.steps or (200 if cuda else 3)
    args.n_train = args.n_train or (25600 if cuda else 512)
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    print(f"# bench_gpu: {name}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, threads {args.threads}, batch {BATCH} per member, "
          f"{args.steps} steps x {args.repeats} repeats")
    if not args.no_steps:
        step_table(args, device)
    if args.loop:
        loop_table(args)


if __name__ == "__main__":
    main()
