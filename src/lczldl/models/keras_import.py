"""Load the authors' published Keras 2.4 H5 weights of Sen2LCZ-Net (no TensorFlow needed).

Layout of the files (``model_weights`` root or the file root, Keras 2 ``save_weights``):
``conv2d[_i]/conv2d[_i]/{kernel:0 (3,3,in,out) HWIO, bias:0}``,
``batch_normalization[_i]/.../{gamma,beta,moving_mean,moving_variance}:0`` and
``dense[_i]/dense[_i]/{kernel:0 (in,K), bias:0}``. Keras numbers layers in creation order: conv i
and BN i are the i-th [conv, BN, ReLU] unit; dense, dense_1, dense_2 sit on merges 1-3 and
dense_3 on the last block (its GAP is global_average_pooling2d_3, applied after activation_15):
the authors' ``sen2LCZ_drop_core(fusion=1)`` creates the merge heads as it goes and the last head
at the end. scripts/make_keras_reference.py checks this mapping against TensorFlow's own outputs.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from lczldl.errors import ModelError
from lczldl.fileio import file_sha256
from lczldl.models.sen2lcz import Sen2LCZ


def _name(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


def _read(group: h5py.Group, layer: str, var: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(group[layer][layer][f"{var}:0"])
    except KeyError:
        raise ModelError(f"{path}: no weight {layer}/{var} in the Keras file; "
                         "expected the published Sen2LCZ-Net H5 weights") from None


def from_keras(path: str | Path) -> Sen2LCZ:
    """Build a :class:`Sen2LCZ` (eval mode) from Keras H5 weights; its probabilities equal Keras's.

    Kernels HWIO -> OIHW, dense (in, K) -> (K, in), BN gamma/beta/moving_mean/moving_variance ->
    weight/bias/running_mean/running_var. Classes, bands, depth and width are read from the shapes.
    ``model.meta`` records the source file name and its sha256. Raises ModelError on other files.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: weight file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{path}: not an HDF5 weight file ({str(exc).splitlines()[0]}); "
                         "pass a Keras .hdf5 weight file of Sen2LCZ-Net") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        n_conv = sum(1 for k in root.keys() if k.startswith("conv2d"))
        if n_conv == 0 or "dense" not in root:
            raise ModelError(f"{path}: no conv2d/dense layers; not a Sen2LCZ-Net Keras checkpoint")
        if n_conv % 4 != 0:
            raise ModelError(f"{path}: {n_conv} conv layers, expected 4 blocks of equal depth")
        n_dense = sum(1 for k in root.keys() if k == "dense" or k.startswith("dense_"))
        n_bn = sum(1 for k in root.keys() if k.startswith("batch_normalization"))
        if n_dense != 4 or n_bn != n_conv:
            raise ModelError(f"{path}: {n_dense} dense / {n_bn} batch-norm layers for {n_conv} convs; "
                             "expected the 4-head fusion Sen2LCZ-Net with BN after every conv")
        k0 = _read(root, "conv2d", "kernel", path)
        in_channels, width = int(k0.shape[2]), int(k0.shape[3])
        num_classes = int(_read(root, "dense", "kernel", path).shape[1])
        model = Sen2LCZ(num_classes=num_classes, in_channels=in_channels, depth=n_conv + 1, width=width)
        units = [u for block in model.blocks for u in block]
        sd = {}
        with torch.no_grad():
            for i, unit in enumerate(units):
                conv, bn = unit[0], unit[1]
                kern = _read(root, _name("conv2d", i), "kernel", path)
                if kern.shape != (3, 3, conv.in_channels, conv.out_channels):
                    raise ModelError(f"{path}: {_name('conv2d', i)} kernel shape {kern.shape} does not fit "
                                     f"Sen2LCZ-Net ({conv.in_channels}->{conv.out_channels})")
                sd[conv] = {"weight": kern.transpose(3, 2, 0, 1),
                            "bias": _read(root, _name("conv2d", i), "bias", path)}
                bname = _name("batch_normalization", i)
                sd[bn] = {"weight": _read(root, bname, "gamma", path), "bias": _read(root, bname, "beta", path),
                          "running_mean": _read(root, bname, "moving_mean", path),
                          "running_var": _read(root, bname, "moving_variance", path)}
            for h, head in enumerate(model.heads):
                dname = _name("dense", h)
                kern = _read(root, dname, "kernel", path)
                if kern.shape != (head.fc.in_features, num_classes):
                    raise ModelError(f"{path}: {dname} kernel shape {kern.shape} does not fit head {h}")
                sd[head.fc] = {"weight": kern.T, "bias": _read(root, dname, "bias", path)}
            for module, tensors in sd.items():
                for name, value in tensors.items():
                    target = getattr(module, name)
                    if tuple(value.shape) != tuple(target.shape):
                        raise ModelError(f"{path}: a {name} array of shape {value.shape} does not fit "
                                         f"Sen2LCZ-Net ({tuple(target.shape)}); not the published model")
                    target.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
    model.meta = {"source": "keras_h5", "weights_file": path.name,
                  "weights_sha256": file_sha256(path)}
    return model.eval()
