"""Monte Carlo dropout: repeated stochastic passes with only dropout layers active.

During the passes every ``nn.Dropout*`` module is in train mode and everything else (BatchNorm in
particular: running statistics neither used per batch nor updated) in eval mode; the model's
previous modes are restored afterwards. The model maps (B, C, H, W) reflectance to natural-log
probabilities (B, K) (``Sen2LCZ.forward``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lczldl.distributions import entropy_nats


def _dropout_types():
    import torch.nn as nn

    return (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def enable_mc_dropout(model: Any) -> None:
    """Put ``model`` in eval mode except its dropout modules (train mode): the MC-dropout setting."""
    model.eval()
    drop = _dropout_types()
    for m in model.modules():
        if isinstance(m, drop):
            m.train(True)


def _batches(images: Any, batch_size: int) -> Iterable[Any]:
    """Yield float32 tensors from a tensor / array (sliced) or an iterable of batches (or dicts
    with key "image"). uint16 arrays are taken as reflectance x 10000 (the store's encoding)."""
    import torch

    def as_tensor(x):
        if isinstance(x, dict):
            x = x["image"]
        if isinstance(x, np.ndarray) and x.dtype == np.uint16:
            return torch.from_numpy(x.astype(np.float32) / 10000.0)
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)

    if isinstance(images, np.ndarray | torch.Tensor):
        for i in range(0, len(images), batch_size):
            yield as_tensor(images[i:i + batch_size])
    else:
        for batch in images:
            yield as_tensor(batch)


def mc_dropout_predict(model: Any, images: Any, passes: int = 20, batch_size: int = 512,
                       seed: int | None = 0) -> dict[str, np.ndarray]:
    """MC-dropout prediction over ``images`` ((N, C, H, W) tensor / array or iterable of batches).

    Returns float64 arrays: ``probs`` (N, K) mean over passes of the per-pass probabilities,
    ``predictive_entropy`` (N,) H(mean p) in nats, ``mutual_info`` (N,) H(mean p) - mean H(p_t)
    (>= 0; the epistemic part), and ``passes``. ``seed`` fixes torch's RNG inside (restored
    afterwards; None uses the current global state). With dropout rate 0 all passes are equal.
    """
    import torch

    if int(passes) < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    modes = {m: m.training for m in model.modules()}
    probs_out, ent_out = [], []
    try:
        enable_mc_dropout(model)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            if seed is not None:
                torch.manual_seed(int(seed))
            for x in _batches(images, batch_size):
                acc = torch.zeros(0)
                h_sum = torch.zeros(len(x), dtype=torch.float64)
                for t in range(int(passes)):
                    lp = model(x).double()
                    p = lp.exp()
                    acc = p if t == 0 else acc + p
                    h_sum += -(p * lp.clamp_min(-1e4)).sum(dim=1)
                probs_out.append((acc / passes).numpy())
                ent_out.append((h_sum / passes).numpy())
    finally:
        for m, was in modes.items():
            m.training = was
    if not probs_out:
        raise ValueError("mc_dropout_predict: no images")
    probs = np.concatenate(probs_out)
    mean_h = np.concatenate(ent_out)
    h = entropy_nats(probs)
    return {"probs": probs, "predictive_entropy": h, "mutual_info": np.maximum(h - mean_h, 0.0),
            "passes": np.int64(passes)}
