"""What the authors' published checkpoints reveal about the real training, next to lczldl runs.

Two facts need no real images:

1. **Input scale.** The first BatchNorm layer's moving mean is the mean of the first convolution's
   output over the real training patches. Away from the zero-padded border the convolution of a
   patch with per-band mean m gives bias + sum over bands and kernel taps of kernel * m, so the
   16 channel means are 16 linear equations in the 10 band means: least squares recovers the mean
   reflectance per band that the network was trained on (border effects make it approximate).
2. **How far training went.** The norms of the four heads' dense kernels. Networks trained longer
   (or on more data) have larger logit scales; compared with a run of this project they show how
   far a reduced budget stops short.

    python scripts/probe_checkpoints.py [--keras DIR] [RUN_CHECKPOINT_OR_MODEL ...]

RUN_CHECKPOINT_OR_MODEL: a run's ``checkpoints/best.ckpt`` or an lczldl model file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lczldl.constants import BANDS
from lczldl.models.io import load_model
from lczldl.models.keras_import import from_keras
from lczldl.models.sen2lcz import Sen2LCZ

KERAS_FILES = {
    "authors onehot": "Sen2LCZ_bs_64_lr_0.002_seed_1234_weights_best.hdf5",
    "authors dist": "Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5",
}


def band_means_from_bn(model: Sen2LCZ) -> tuple[np.ndarray, float]:
    """(10,) least-squares band means of the training inputs from the first conv + BN layer, and
    the RMS residual of the 16 equations (in BN-input units)."""
    sd = model.state_dict()
    conv = next(k for k, v in sd.items() if k.endswith("weight") and v.ndim == 4)
    kernel = sd[conv].double().numpy()                       # (16, 10, 3, 3)
    bias = sd[conv.replace("weight", "bias")].double().numpy()
    mean = sd[next(k for k in sd if k.endswith("running_mean"))].double().numpy()
    a = kernel.sum(axis=(2, 3))                              # response to a constant image
    mu, *_ = np.linalg.lstsq(a, mean - bias, rcond=None)
    return mu, float(np.sqrt(np.mean((a @ mu + bias - mean) ** 2)))


def head_norms(model: Sen2LCZ) -> list[float]:
    """Frobenius norms of the dense (head) kernels, in model order."""
    sd = model.state_dict()
    return [float(v.norm()) for k, v in sd.items() if k.endswith("weight") and v.ndim == 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, help="lczldl checkpoints / model files")
    ap.add_argument("--keras", type=Path, default=Path("../shared/data/lcz_ldl_keras"),
                    help="folder with the authors' two H5 weight files")
    args = ap.parse_args()
    models = {tag: from_keras(args.keras / name) for tag, name in KERAS_FILES.items()
              if (args.keras / name).exists()}
    for path in args.models:
        models[str(path)] = load_model(path)
    if not models:
        raise SystemExit(f"no checkpoints found (looked in {args.keras}); pass --keras DIR or model files")
    print("band means of the training inputs (from the first BatchNorm), reflectance:")
    print(f"{'model':>28} " + " ".join(f"{b[3:]:>6}" for b in BANDS) + "  resid")
    for tag, m in models.items():
        mu, res = band_means_from_bn(m)
        print(f"{tag[-28:]:>28} " + " ".join(f"{v:6.3f}" for v in mu) + f"  {res:.3f}")
    print("\nhead kernel norms (merge 1, merge 2, merge 3, last block):")
    for tag, m in models.items():
        print(f"{tag[-28:]:>28} " + " ".join(f"{v:6.2f}" for v in head_norms(m)))


if __name__ == "__main__":
    main()
