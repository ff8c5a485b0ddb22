"""Reference outputs of the published Keras checkpoints, computed by TensorFlow (run once, commit).

Needs TensorFlow (not a dependency of lczldl): run it in a throwaway venv, e.g.

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu h5py
    /tmp/tfvenv/bin/python scripts/make_keras_reference.py

It builds Sen2LCZ-Net in Keras exactly as the authors' code does (``sen2LCZ_drop_core`` of Qiu's
benchmark code as used by the LCZ_ldl seed: depth 17, dim 16, dropRate 0.2, fusion=1, 10 classes),
loads each weight file of ../shared/data/lcz_ldl_keras with Keras' own legacy-H5 loader, checks the
result against an independent by-name assignment from the file, and runs a fixed input through it.

Output: tests/resources/keras_reference_{onehot,dist}.npz with
  x           (N, 10, 32, 32) float32 reflectance, NCHW (Keras saw the NHWC transpose)
  probs       (N, 10) float32 Keras' fused probabilities (mean of the four softmax heads)
  head_probs  (N, 4, 10) float32 the four heads' softmax in order merge1, merge2, merge3, last
  + provenance strings (weights file, sha256, versions, seed).
The input: 8 patches, numpy seed 20240601: 5 with i.i.d. uniform reflectance in [0, 0.5),
3 built from typical spectra (urban, vegetation, water) plus spatial texture. Values are
quantised to DN / 10000 like real Sentinel-2 data so the files compress well.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import h5py
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / ".." / "shared" / "data" / "lcz_ldl_keras"
FILES = {
    "onehot": "Sen2LCZ_bs_64_lr_0.002_seed_1234_weights_best.hdf5",
    "dist": "Sen2LCZ_bs_64_lr_0.002_seed_1234_d_weights_best.hdf5",
}
SEED = 20240601
N_UNIFORM, N_SPECTRA = 5, 3


def make_input(seed: int = SEED) -> np.ndarray:
    """(8, 10, 32, 32) float32 reflectance, quantised to multiples of 1e-4."""
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(0.0, 0.5, size=(N_UNIFORM, 10, 32, 32))
    # Typical Sentinel-2 spectra (B2 B3 B4 B5 B6 B7 B8 B8A B11 B12), reflectance.
    spectra = np.array([
        [0.12, 0.11, 0.11, 0.13, 0.15, 0.16, 0.17, 0.18, 0.19, 0.16],  # urban
        [0.03, 0.06, 0.04, 0.10, 0.28, 0.34, 0.36, 0.38, 0.19, 0.09],  # vegetation
        [0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.009, 0.005, 0.003],  # water
    ])
    texture = rng.normal(1.0, 0.25, size=(N_SPECTRA, 1, 32, 32)) * rng.normal(1.0, 0.05, (N_SPECTRA, 10, 1, 1))
    real = np.clip(spectra[:, :, None, None] * texture, 0.0, 1.0)
    x = np.concatenate([uniform, real], axis=0)
    return (np.round(x * 10000.0) / 10000.0).astype(np.float32)


def build_keras(num_classes: int = 10, depth: int = 17, dim: int = 16, drop_rate: float = 0.2):
    """The authors' ``sen2LCZ_drop(fusion=1)`` with Keras 2's automatic layer names made explicit.

    Returns (fused model, heads model). Layer names follow Keras 2 creation-order numbering, which
    is what the published H5 files use (conv2d, conv2d_1, ..., dense, dense_1, ...).
    """
    from tensorflow import keras
    from tensorflow.keras import layers as L

    counters: dict[str, int] = {}

    def nm(base: str) -> str:
        i = counters.get(base, 0)
        counters[base] = i + 1
        return base if i == 0 else f"{base}_{i}"

    def conv_bn_relu(x, d):
        x = L.Conv2D(d, (3, 3), padding="same", kernel_initializer="he_normal", name=nm("conv2d"))(x)
        x = L.BatchNormalization(axis=-1, name=nm("batch_normalization"))(x)
        return L.Activation("relu", name=nm("activation"))(x)

    def block(x, d):
        for _ in range((depth - 1) // 4):
            x = conv_bn_relu(x, d)
        return x

    def merge(x):
        p0 = L.MaxPooling2D((2, 2), name=nm("max_pooling2d"))(x)
        p1 = L.AveragePooling2D(pool_size=2, name=nm("average_pooling2d"))(x)
        return L.Concatenate(name=nm("concatenate"))([p0, p1])

    def head(x):
        x = L.GlobalAveragePooling2D(name=nm("global_average_pooling2d"))(x)
        return L.Dense(num_classes, activation="softmax", kernel_initializer="he_normal", name=nm("dense"))(x)

    inputs = keras.Input(shape=(32, 32, 10), name="input_1")
    merge0 = merge(block(inputs, dim))
    out_32 = head(merge0)
    merge1 = L.Dropout(drop_rate, name=nm("dropout"))(merge(block(merge0, dim * 2)))
    out_16 = head(merge1)
    merge2 = L.Dropout(drop_rate, name=nm("dropout"))(merge(block(merge1, dim * 4)))
    out_8 = head(merge2)
    out = head(block(merge2, dim * 8))
    fused = L.Average(name="average")([out, out_32, out_16, out_8])
    model = keras.Model(inputs, fused)
    heads = keras.Model(inputs, [out_32, out_16, out_8, out])
    return model, heads


def assign_by_name(model, path: Path) -> None:
    """Set every weight from ``model_weights/<layer>/<layer>/<var>:0`` of the H5 file."""
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in model.layers:
            if not layer.weights:
                continue
            group = root[layer.name][layer.name]
            values = []
            for w in layer.weights:
                var = w.name.split("/")[-1].split(":")[0]
                values.append(np.asarray(group[f"{var}:0"]))
            layer.set_weights(values)


def main() -> int:
    import tensorflow as tf

    x = make_input()
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out_dir = ROOT / "tests" / "resources"
    out_dir.mkdir(parents=True, exist_ok=True)
    for tag, fname in FILES.items():
        path = (WEIGHTS / fname).resolve()
        model, heads = build_keras()
        model.load_weights(str(path))  # Keras' own legacy-H5 loader (topological order)
        check, _ = build_keras()
        assign_by_name(check, path)  # independent: by layer name
        for a, b in zip(model.get_weights(), check.get_weights(), strict=True):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise SystemExit(f"{fname}: Keras loader and by-name assignment disagree")
        probs = model(x_nhwc, training=False).numpy().astype(np.float32)
        head_probs = np.stack([h.numpy() for h in heads(x_nhwc, training=False)], axis=1).astype(np.float32)
        if not np.allclose(head_probs.mean(axis=1), probs, atol=1e-6):
            raise SystemExit(f"{fname}: heads do not average to the fused output")
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        out = out_dir / f"keras_reference_{tag}.npz"
        tmp = out.with_name(f".{out.stem}.tmp.npz")
        np.savez_compressed(
            tmp, x=x, probs=probs, head_probs=head_probs, weights_file=np.array(fname),
            weights_sha256=np.array(sha), tensorflow_version=np.array(tf.__version__),
            keras_version=np.array(tf.keras.__version__ if hasattr(tf.keras, "__version__") else ""),
            numpy_seed=np.array(SEED))
        os.replace(tmp, out)
        print(f"{out.relative_to(ROOT)}: {out.stat().st_size / 1024:.0f} KiB, "
              f"argmax {probs.argmax(1).tolist()}, max p {probs.max(1).round(3).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
