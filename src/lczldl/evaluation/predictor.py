"""Owns running trained models over images: plain log-probabilities, the ensemble mean of member
probabilities (live models or their saved predictions), per-member temperature, MC-dropout passes,
predictive entropy and mutual information. Evaluation and maps both predict through it.

Conventions: a model maps (B, C, H, W) float32 reflectance to (B, K) natural-log probabilities
(``Sen2LCZ.forward``). Averaging is in probability space: the ensemble is the mean of its members'
probabilities, MC dropout the mean over passes (each member gets the same number of passes).
During MC passes every ``nn.Dropout*`` module is in train mode and everything else (BatchNorm in
particular: running statistics neither used per batch nor updated) in eval mode; the models'
previous modes are restored afterwards. torch is imported inside the functions that need it.

Devices: a model computes where its parameters are (:func:`eval_device` is where evaluation puts
them: CUDA when available); each batch goes there and the results come back to the host as numpy,
so everything after the network (temperature, conformal, metrics) is the same numpy code for every
device. On CPU the MC passes run one after the other (each pass's masks drawn as before); on an
accelerator up to :data:`PASS_ROWS` rows of passes run in one forward (the batch repeated, each row
drawing its own masks), so 20 passes cost a few launches instead of 20.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from lczldl.constants import MC_PASSES, REFLECTANCE_SCALE
from lczldl.distributions import entropy_nats
from lczldl.errors import DataError

#: Ensemble confidences: "max" of the mean (default), or the seed's "mean_member" (see
#: :func:`ensemble_confidence`).
CONFIDENCES = ("max", "mean_member")
#: log-probabilities below this are clamped before p * log p (keeps 0 * -inf out of entropies)
_LOG_FLOOR = -1e4
#: rows (passes x batch) per forward when MC passes are batched on an accelerator
PASS_ROWS = 16384


def eval_device() -> Any:
    """Where evaluation runs the networks: the current CUDA device when CUDA is available, else CPU."""
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def model_device(model: Any) -> Any:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    import torch

    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


# ---------------------------------------------------------------- saved predictions (numpy)

def ensemble_probs(members: Sequence[np.ndarray]) -> np.ndarray:
    """Mean (N, K) float64 of the members' (N, K) probabilities (all the same shape)."""
    if len(members) == 0:
        raise DataError("ensemble: no member predictions to average")
    arrs = [np.asarray(m, dtype=np.float64) for m in members]
    shape = arrs[0].shape
    for i, a in enumerate(arrs):
        if a.shape != shape or a.ndim != 2:
            raise DataError(f"ensemble: member {i} has shape {a.shape}, member 0 has {shape}; "
                            "members must predict the same samples")
    return np.mean(np.stack(arrs), axis=0)


def ensemble_confidence(members: Sequence[np.ndarray], confidence: str = "max") -> np.ndarray:
    """(N,) confidence of the ensemble: "max" = max of the mean; "mean_member" = mean over members
    of each member's max probability (the seed's ensemble.py; correctness still comes from the
    argmax of the mean, so pass it to ``compute_metrics(confidence=...)`` to reproduce its ECE)."""
    if confidence == "max":
        return ensemble_probs(members).max(axis=1)
    if confidence == "mean_member":
        return np.mean([np.asarray(m, dtype=np.float64).max(axis=1) for m in members], axis=0)
    raise ValueError(f"confidence must be one of {CONFIDENCES}, got {confidence!r}")


def probs_from_log_probs(log_probs: np.ndarray) -> np.ndarray:
    """(N, K) float32 probabilities saved beside a model's log-probabilities: exp, rows renormalised
    in float64 (what predictions.npz holds as ``probs``)."""
    p = np.exp(np.asarray(log_probs).astype(np.float64))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- images

def as_batch(x: Any) -> Any:
    """One batch as a float32 tensor: a tensor / array of reflectance, a dict with key "image", or
    uint16 digital numbers (the store's encoding, divided by REFLECTANCE_SCALE)."""
    import torch

    if isinstance(x, dict):
        x = x["image"]
    if isinstance(x, np.ndarray) and x.dtype == np.uint16:
        return torch.from_numpy(x.astype(np.float32) / np.float32(REFLECTANCE_SCALE))
    return torch.as_tensor(x if isinstance(x, torch.Tensor) else np.asarray(x), dtype=torch.float32)


def batches(images: Any, batch_size: int) -> Iterator[Any]:
    """float32 tensors of ``batch_size`` rows from an (N, C, H, W) tensor / array, or one per item
    of an iterable of batches (see :func:`as_batch`)."""
    import torch

    if isinstance(images, np.ndarray | torch.Tensor):
        for i in range(0, len(images), batch_size):
            yield as_batch(images[i:i + batch_size])
    else:
        for b in images:
            yield as_batch(b)


# ---------------------------------------------------------------- models

def _dropout_types() -> tuple[type, ...]:
    import torch.nn as nn

    return (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def enable_mc_dropout(model: Any) -> None:
    """Put ``model`` in eval mode except its dropout modules (train mode): the MC-dropout setting."""
    model.eval()
    drop = _dropout_types()
    for m in model.modules():
        if isinstance(m, drop):
            m.train(True)


@contextlib.contextmanager
def prediction_mode(models: Sequence[Any], mc: bool) -> Iterator[None]:
    """Eval mode (with dropout on when ``mc``) for the block; every module's mode restored after."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            if mc:
                enable_mc_dropout(model)
            else:
                model.eval()
        yield
    finally:
        for m, was in modes:
            m.training = was


def predict_log_probs(model: Any, images: Iterable[Any]) -> np.ndarray:
    """(N, K) float32 natural-log probabilities of one model over batches of images (eval mode;
    BatchNorm folded if the model offers ``inference_copy``). DataError when there is no image."""
    import torch

    net = model.inference_copy() if hasattr(model, "inference_copy") else model.eval()
    net.eval()
    device = model_device(net)
    out = []
    with torch.no_grad():
        for x in images:
            out.append(net(as_batch(x).to(device, non_blocking=True)).float().cpu().numpy())
    if not out:
        raise DataError("predict_log_probs: no images")
    return np.concatenate(out)


class Predictor:
    """Probabilities of one or more models (an ensemble) over image batches.

    ``temperatures`` (one per model, default 1) scale each member as softmax(log_probs / T);
    ``mc_passes`` > 0 runs that many dropout passes per member (0: one deterministic pass);
    ``channels_last`` converts each batch to that memory format (models stored that way).
    ``pass_batch``: MC passes per forward (None: 1 on CPU, as many as fit :data:`PASS_ROWS` rows
    elsewhere). Each model computes on its own device.
    """

    def __init__(self, models: Sequence[Any], temperatures: Sequence[float] | None = None,
                 mc_passes: int = 0, channels_last: bool = False, pass_batch: int | None = None) -> None:
        if not models:
            raise ValueError("Predictor: no models")
        self.models = list(models)
        self.temperatures = [1.0] * len(self.models) if temperatures is None else [float(t) for t in temperatures]
        if len(self.temperatures) != len(self.models):
            raise ValueError(f"Predictor: {len(self.temperatures)} temperatures for {len(self.models)} models")
        if int(mc_passes) < 0:
            raise ValueError(f"mc_passes must be >= 0, got {mc_passes}")
        self.mc_passes = int(mc_passes)
        self.channels_last = channels_last
        if pass_batch is not None and int(pass_batch) < 1:
            raise ValueError(f"pass_batch must be >= 1, got {pass_batch}")
        self.pass_batch = pass_batch

    def _chunk(self, device: Any, rows: int, passes: int) -> int:
        """Passes per forward for a batch of ``rows`` on ``device``."""
        if self.pass_batch is not None:
            return min(int(self.pass_batch), passes)
        return 1 if device.type == "cpu" else max(1, min(passes, PASS_ROWS // max(rows, 1)))

    def batch(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """One batch (B, C, H, W) -> (probs (B, K) float64: the ensemble mean of each member's mean
        over passes, mean_entropy (B,) float64: mean over members and passes of H(p_t) in nats).
        Runs in the models' current modes with torch's current RNG (see :meth:`predict`)."""
        import torch

        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        passes = max(1, self.mc_passes)
        member_p, member_h = [], []
        for model, t in zip(self.models, self.temperatures, strict=True):
            device = model_device(model)
            xd = x.to(device, non_blocking=True)
            acc = torch.zeros(0)
            h_sum = torch.zeros(len(x), dtype=torch.float64, device=device)
            # MC passes differ only after the first dropout: a model that splits there (trunk / tail,
            # Sen2LCZ) runs its deterministic trunk once per batch; same numbers, RNG used alike
            split = passes > 1 and hasattr(model, "trunk") and hasattr(model, "tail")
            state = model.trunk(xd) if split else None
            chunk, done = self._chunk(device, len(x), passes), 0
            while done < passes:
                c = min(chunk, passes - done)
                if c == 1:
                    lp = (model.tail(state) if split else model(xd)).double().unsqueeze(0)
                else:                    # c passes as one batch of c x B rows, each row its own masks
                    rows = (tuple(torch.cat([s] * c) for s in state) if split else torch.cat([xd] * c))
                    lp = (model.tail(rows) if split else model(rows)).double().reshape(c, len(x), -1)
                if t != 1.0:
                    lp = torch.log_softmax(lp / t, dim=-1)
                p = lp.exp()
                for i in range(c):       # sums in pass order, as one pass at a time
                    acc = p[i] if done + i == 0 else acc + p[i]
                    h_sum += -(p[i] * lp[i].clamp_min(_LOG_FLOOR)).sum(dim=1)
                done += c
            member_p.append((acc / passes).cpu().numpy())
            member_h.append((h_sum / passes).cpu().numpy())
        return ensemble_probs(member_p), np.mean(member_h, axis=0)

    def predict(self, images: Any, batch_size: int = 512, seed: int | None = 0) -> dict[str, np.ndarray]:
        """Predict over ``images`` ((N, C, H, W) tensor / array, or an iterable of batches).

        Returns float64 arrays ``probs`` (N, K), ``predictive_entropy`` (N,) H(mean p) in nats,
        ``mutual_info`` (N,) H(mean p) - mean H(p_t) (>= 0; the spread between members and passes)
        and ``passes``. With MC dropout torch's RNG is seeded with ``seed`` inside a fork (restored
        afterwards, the models' CUDA devices' too; None uses the current global state); without it
        no RNG is touched. On CUDA the masks come from CUDA's generator: other masks than on CPU,
        the same distribution.
        """
        import torch

        mc = self.mc_passes > 0
        probs_out, ent_out = [], []
        cuda = sorted({d.index or 0 for d in map(model_device, self.models) if d.type == "cuda"})
        with contextlib.ExitStack() as stack:
            stack.enter_context(prediction_mode(self.models, mc))
            stack.enter_context(torch.inference_mode())
            if mc:
                stack.enter_context(torch.random.fork_rng(devices=cuda))
                if seed is not None:
                    torch.manual_seed(int(seed))
            for x in batches(images, batch_size):
                p, h = self.batch(x)
                probs_out.append(p)
                ent_out.append(h)
        if not probs_out:
            raise DataError("Predictor.predict: no images")
        probs = np.concatenate(probs_out)
        h = entropy_nats(probs)
        return {"probs": probs, "predictive_entropy": h,
                "mutual_info": np.maximum(h - np.concatenate(ent_out), 0.0),
                "passes": np.int64(max(1, self.mc_passes))}


def mc_dropout_predict(model: Any, images: Any, passes: int = MC_PASSES, batch_size: int = 512,
                       seed: int | None = 0) -> dict[str, np.ndarray]:
    """MC-dropout prediction of one model: :meth:`Predictor.predict` with ``passes`` >= 1 dropout
    passes (with dropout rate 0 all passes are equal)."""
    if int(passes) < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    return Predictor([model], mc_passes=passes).predict(images, batch_size=batch_size, seed=seed)
