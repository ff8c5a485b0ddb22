"""Speed of Sen2LCZ-Net on CPU: training steps and inference, PyTorch variants vs Keras, one run.

    python benchmarks/bench_model.py [--threads N] [--repeats 3] [--compile] [--no-keras]
                                     [--keras-python /path/to/venv-with-tensorflow/bin/python]

Prints a table of samples/s (median over interleaved repeats, with min..max). Measured:
- train: forward + backward + NAdam step on a fixed in-memory batch (batch 64), loss = cross-entropy
  of soft targets on the model's log-probabilities (the training loop's data loading is not part
  of this number; see the training benchmark for the real loop);
- infer: eval-mode forward to fused probabilities, no grad (batch 64 and 256).
Variants: NCHW ("contiguous"), channels_last (the default), channels_last + BatchNorm folded into
the convs (inference), torch.compile of those (with --compile; compile time is reported), and
TensorFlow/Keras (the authors' model built by scripts/make_keras_reference.py; Nadam, categorical
cross-entropy, compiled train step / tf.function call) when tensorflow is importable.
PyTorch and TensorFlow each measure in their own worker process (in one process TensorFlow's
spinning thread pool slows PyTorch ~30x); the parent interleaves their measurements.

Numbers depend on the machine and its load; compare rows of one run only. On a machine shared
with other busy processes, PyTorch's OpenMP threads spin-wait at every barrier and lose most of
their speed (measured: 2 threads, load ~9 on 2 cores, training 30 samples/s); run with
``OMP_WAIT_POLICY=PASSIVE`` (or fewer threads) there. The header prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _time(step: Callable[[], object], samples_per_step: int, min_time: float, warmup: int) -> float:
    """samples/s of ``step`` run for at least ``min_time`` seconds after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time and n >= 3:
            return n * samples_per_step / dt


def torch_cases(args: argparse.Namespace) -> dict[str, tuple[str, Callable[[], float]]]:
    import torch

    from lczldl.models.sen2lcz import Sen2LCZ

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    xb = torch.from_numpy(rng.uniform(0, 0.5, (args.batch, 10, 32, 32)).astype(np.float32))
    tb = torch.softmax(torch.randn(args.batch, 10), 1)
    xi = {b: torch.from_numpy(rng.uniform(0, 0.5, (b, 10, 32, 32)).astype(np.float32)) for b in args.infer_batch}
    cases: dict[str, tuple[str, Callable[[], float]]] = {}

    def train_case(memory_format: str, compiled: bool) -> Callable[[], float]:
        model = Sen2LCZ(memory_format=memory_format).train()
        opt = torch.optim.NAdam(model.parameters(), lr=0.002)
        fwd = torch.compile(model) if compiled else model

        def step() -> None:
            loss = -(tb * fwd(xb)).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if compiled:
            t0 = time.perf_counter()
            step()
            print(f"  compile (train, {memory_format}): {time.perf_counter() - t0:.1f} s", flush=True)
        return lambda: _time(step, args.batch, args.min_time, args.warmup)

    def infer_case(memory_format: str, fold: bool, compiled: bool, b: int) -> Callable[[], float]:
        model = Sen2LCZ(memory_format=memory_format).eval()
        if fold:
            model = model.inference_copy()
        fwd = torch.compile(model) if compiled else model
        x = xi[b]

        def step() -> None:
            with torch.inference_mode():
                fwd(x).exp()

        if compiled:
            t0 = time.perf_counter()
            step()
            print(f"  compile (infer b{b}, {memory_format}, fold={fold}): {time.perf_counter() - t0:.1f} s",
                  flush=True)
        return lambda: _time(step, b, args.min_time, args.warmup)

    cases["torch NCHW"] = ("train", train_case("contiguous", False))
    cases["torch channels_last"] = ("train", train_case("channels_last", False))
    if args.compile:
        cases["torch channels_last + compile"] = ("train", train_case("channels_last", True))
    for b in args.infer_batch:
        cases[f"torch NCHW @{b}"] = ("infer", infer_case("contiguous", False, False, b))
        cases[f"torch channels_last @{b}"] = ("infer", infer_case("channels_last", False, False, b))
        cases[f"torch channels_last + BN fold @{b}"] = ("infer", infer_case("channels_last", True, False, b))
        if args.compile:
            cases[f"torch channels_last + BN fold + compile @{b}"] = (
                "infer", infer_case("channels_last", True, True, b))
    return cases


def keras_cases(args: argparse.Namespace) -> dict[str, tuple[str, Callable[[], float]]]:
    import tensorflow as tf

    sys.path.insert(0, str(ROOT / "scripts"))  # the authors' architecture, as the reference script
    from make_keras_reference import build_keras

    tf.keras.utils.set_random_seed(0)
    model, _ = build_keras()
    model.compile(optimizer=tf.keras.optimizers.Nadam(learning_rate=0.002), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    xb = rng.uniform(0, 0.5, (args.batch, 32, 32, 10)).astype(np.float32)
    yb = rng.dirichlet(np.ones(10), args.batch).astype(np.float32)
    call = tf.function(lambda x: model(x, training=False))
    xi = {b: tf.constant(rng.uniform(0, 0.5, (b, 32, 32, 10)).astype(np.float32)) for b in args.infer_batch}
    cases: dict[str, tuple[str, Callable[[], float]]] = {
        "keras": ("train", lambda: _time(lambda: model.train_on_batch(xb, yb), args.batch,
                                         args.min_time, args.warmup))}
    for b in args.infer_batch:
        cases[f"keras @{b}"] = ("infer", lambda b=b: _time(lambda: call(xi[b]).numpy(), b, args.min_time,
                                                          args.warmup))
    return cases


def _worker(args: argparse.Namespace) -> int:
    """Measure on request: read a case name per line on stdin, answer its samples/s on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # prints of the cases (compile times) must not disturb the protocol
    if args.worker == "torch":
        import torch

        torch.set_num_threads(args.threads)
        cases = torch_cases(args)
        info = f"torch {torch.__version__}"
    else:
        try:
            import tensorflow as tf
        except ImportError:
            out.write(json.dumps({"info": "tensorflow not importable: Keras not measured", "cases": {}}) + "\n")
            out.flush()
            return 0
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        cases = keras_cases(args)
        info = f"tensorflow {tf.__version__}, keras {tf.keras.__version__}"
    out.write(json.dumps({"info": info, "cases": {k: v[0] for k, v in cases.items()}}) + "\n")
    out.flush()
    for line in sys.stdin:
        name = line.strip()
        if not name:
            break
        out.write(json.dumps(cases[name][1]()) + "\n")
        out.flush()
    return 0


class _Worker:
    """A measuring subprocess (one framework per process: TensorFlow's spinning thread pool makes
    PyTorch's OpenMP threads ~30x slower when both live in one process)."""

    def __init__(self, python: str, kind: str, argv: list[str]) -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", kind, *argv],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        hello = json.loads(self.proc.stdout.readline() or "{}")
        self.info: str = hello.get("info", f"{kind} worker failed to start")
        self.cases: dict[str, str] = hello.get("cases", {})

    def measure(self, name: str) -> float:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return float(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="training batch")
    ap.add_argument("--infer-batch", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--keras-python", default=sys.executable,
                    help="interpreter with tensorflow for the Keras worker (default: this one)")
    ap.add_argument("--worker", choices=["torch", "keras"], help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    if args.worker:
        return _worker(args)

    passthrough = [a for a in argv if a not in ("--no-keras",)]
    if "--keras-python" in passthrough:
        i = passthrough.index("--keras-python")
        del passthrough[i:i + 2]
    workers = [_Worker(sys.executable, "torch", passthrough)]
    keras_note = "Keras not measured (--no-keras)"
    if not args.no_keras:
        kw = _Worker(args.keras_python, "keras", passthrough)
        keras_note = kw.info
        if kw.cases:
            workers.append(kw)
        else:
            kw.close()
    load0 = os.getloadavg()[0]
    results: dict[str, list[float]] = {name: [] for w in workers for name in w.cases}
    kinds = {name: kind for w in workers for name, kind in w.cases.items()}
    try:
        for r in range(args.repeats):  # interleaved: every case once per repeat, frameworks alternate
            for w in workers:
                for name in w.cases:
                    results[name].append(w.measure(name))
            print(f"  repeat {r + 1}/{args.repeats} done", flush=True)
    finally:
        for w in workers:
            w.close()

    print(f"\nSen2LCZ-Net (788,936 params), {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, {workers[0].info}, {keras_note}; "
          f"median of {args.repeats} interleaved repeats (min..max); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
          f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end\n")
    for kind in ("train", "infer"):
        base = {}
        for name, vals in results.items():
            if kinds[name] == kind and name.startswith("keras"):
                base[name.split("@")[-1] if "@" in name else ""] = statistics.median(vals)
        print(f"| {kind} (batch {args.batch if kind == 'train' else 'as named'}) | samples/s | min..max | x Keras |")
        print("|---|---:|---:|---:|")
        for name, vals in results.items():
            if kinds[name] != kind:
                continue
            med = statistics.median(vals)
            ref = base.get(name.split("@")[-1] if "@" in name else "")
            ratio = f"{med / ref:.2f}" if ref else "-"
            print(f"| {name} | {med:,.0f} | {min(vals):,.0f}..{max(vals):,.0f} | {ratio} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
