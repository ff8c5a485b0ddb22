"""Peak memory of ``lczldl data prepare --so2sat`` against the size of the release: it must not grow
with the file (v2's training.h5 is about 52 GB).

For each size, a synthetic So2Sat LCZ42 v2 release in TorchGeo's layout is written in row blocks
(:func:`lczldl.data.synth_so2sat.write_so2sat`: ``sen1`` and ``sen2`` float64, uncompressed, like
the real files; writing needs one block of memory) into a temp folder; prepare runs in a
subprocess that reports its own peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
and wall time; the generated files are deleted after each size. A last subprocess that only imports
prepare gives the baseline (Python, numpy, h5py). Prints a table.

Usage: python benchmarks/bench_prepare_so2sat.py [--sizes 2000,21000] [--dir /tmp]
I/O heavy: 21,000 patches are about 3 GB of h5 (144 KiB per patch with sen1) plus a 0.4 GB store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lczldl.data.synth_so2sat import write_so2sat

PREPARE = """
import json, resource, sys, time
from lczldl.data.prepare import prepare_so2sat_store
t0 = time.perf_counter()
m = prepare_so2sat_store(sys.argv[1], sys.argv[2], progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "n": {s: v["n"] for s, v in m["splits"].items()}}))
"""
BASELINE = """
import json, resource
import lczldl.data.prepare, lczldl.data.prepare_so2sat, lczldl.data.prepare_pixels, h5py  # noqa: F401
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,21000", help="training patches per size (comma list)")
    ap.add_argument("--dir", default=None, help="folder for the temp files (default: the system temp)")
    args = ap.parse_args()
    base = _child(BASELINE)["peak_kib"] / 1024
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="bench_so2sat_", dir=args.dir))
        try:
            per_class = {"train": max(1, n // 17), "val": 10, "test": 10}
            t0 = time.perf_counter()
            write_so2sat(tmp / "v2", "2", per_class, seed=0)
            gen_s = time.perf_counter() - t0
            h5 = _size(tmp / "v2")
            r = _child(PREPARE, str(tmp / "v2"), str(tmp / "store"))
            rows.append({"patches": sum(r["n"].values()), "h5_gb": h5 / 1e9, "generate_s": gen_s,
                         "prepare_s": r["seconds"], "peak_mib": r["peak_kib"] / 1024,
                         "store_gb": _size(tmp / "store") / 1e9})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
          f"baseline (imports only) peak RSS {base:.0f} MiB")
    print("| patches | h5 files (GB) | generate (s) | prepare (s) | prepare peak RSS (MiB) | store (GB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['patches']:,} | {r['h5_gb']:.2f} | {r['generate_s']:.0f} | {r['prepare_s']:.0f} | "
              f"{r['peak_mib']:.0f} | {r['store_gb']:.2f} |")


if __name__ == "__main__":
    main()
