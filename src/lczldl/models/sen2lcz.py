"""Sen2LCZ-Net (Qiu et al. 2020) as the authors' seed configures it (PROTOCOL.md).

Defaults: depth 17 -> 4 blocks of 4 x [conv3x3 'same' with bias, BatchNorm, ReLU], widths
16/32/64/128, he_normal init. After blocks 1-3: concat(MaxPool2, AvgPool2) (max first). Dropout 0.2
after merges 2 and 3 only. Fusion: four heads GAP -> Linear(K) on merge 1, merge 2, merge 3 and the
last block; the fused prediction is the mean of the four softmax outputs. Keras BatchNorm
(eps 1e-3, momentum 0.99 == PyTorch momentum 0.01). 788,936 trainable parameters for 10 classes.

Input: (N, bands, 32, 32) float32 reflectance (DN / 10000), no normalisation (as the seed).
``forward`` returns the canonical log-probabilities log(mean_h softmax(z_h)) (N, K), computed
stably as logsumexp_h(log_softmax(z_h)) - log H.

Speed: by default the convolutions run in ``torch.channels_last`` memory format (oneDNN's fast
path on CPU; inputs are converted inside ``forward``); numerics are those of float32 convolution.
:func:`fuse_for_inference` folds every BatchNorm into its conv for evaluation.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # PyTorch convention: 1 - Keras momentum 0.99
#: Keras' truncated-normal correction: std of a unit normal truncated at +-2 std.
_TRUNC_STD = 0.87962566103423978

FUSIONS = ("prob_mean", "logit_mean", "last")
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def he_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keras ``he_normal`` in place: truncated normal (at 2 sigma) whose std is sqrt(2 / fan_in).

    fan_in = in_channels * kh * kw for conv weights (O, I, kh, kw), in_features for linear (O, I).
    As in Keras, the pre-truncation sigma is std / 0.8796 so the truncated draw has std sqrt(2/fan_in).
    """
    fan_in = tensor.shape[1] * (tensor[0, 0].numel() if tensor.dim() > 2 else 1)
    sigma = math.sqrt(2.0 / fan_in) / _TRUNC_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(tensor, mean=0.0, std=sigma, a=-2 * sigma, b=2 * sigma,
                                     generator=generator)


class ConvBNReLU(nn.Sequential):
    """conv3x3 'same' (with bias) -> BatchNorm (Keras eps/momentum) -> ReLU; indices 0, 1, 2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=True),
            nn.BatchNorm2d(cout, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )


class MaxAvgMerge(nn.Module):
    """concat(MaxPool2d(2), AvgPool2d(2)) along channels, max first (as the Keras code): C -> 2C."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([nn.functional.max_pool2d(x, 2), nn.functional.avg_pool2d(x, 2)], dim=1)


class Head(nn.Module):
    """Global average pooling -> Linear(K) logits: (N, C, H, W) -> (N, K)."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class Sen2LCZ(nn.Module):
    """Sen2LCZ-Net with multi-level fusion.

    Args:
        num_classes: K (10 urban LCZ by default, 17 for all).
        in_channels: number of input bands (10 for So2Sat sen2).
        depth: 17 -> 4 convs per block (depth = 4 * convs_per_block + 1).
        width: channels of the first block; block b has width * 2**b.
        dropout: dropout rate after merges 2 and 3 (``nn.Dropout`` modules ``drop2``/``drop3``, so
            MC dropout can switch them alone to train mode).
        fusion: "prob_mean" (log of the mean of the heads' softmax, default), "logit_mean"
            (log_softmax of the mean logits: the seed's temperature-scaling variant) or "last"
            (last head only).
        memory_format: "channels_last" (default; faster on CPU with oneDNN) or "contiguous" (NCHW).
            It changes speed only, not the function computed.

    ``model_kwargs`` holds the constructor arguments (for saving and rebuilding).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 10, depth: int = 17, width: int = 16,
                 dropout: float = 0.2, fusion: str = "prob_mean",
                 memory_format: str = "channels_last") -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if int(in_channels) < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if (depth - 1) % 4 != 0 or depth < 5:
            raise ValueError(f"depth must be 4*n+1 with n >= 1 (e.g. 17), got {depth}")
        if int(width) < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {tuple(MEMORY_FORMATS)}, got {memory_format!r}")
        self.model_kwargs: dict[str, Any] = dict(
            num_classes=int(num_classes), in_channels=int(in_channels), depth=int(depth),
            width=int(width), dropout=float(dropout), fusion=fusion, memory_format=memory_format)
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.fusion = fusion
        self._memory_format = MEMORY_FORMATS[memory_format]
        n = (depth - 1) // 4
        widths = [width * 2**b for b in range(4)]
        blocks = []
        cin = in_channels
        for b, w in enumerate(widths):
            blocks.append(nn.Sequential(*[ConvBNReLU(cin if i == 0 else w, w) for i in range(n)]))
            cin = 2 * w if b < 3 else w  # the merge doubles the channels
        self.blocks = nn.ModuleList(blocks)
        self.merge = MaxAvgMerge()
        self.drop2 = nn.Dropout(dropout)
        self.drop3 = nn.Dropout(dropout)
        self.heads = nn.ModuleList([Head(2 * widths[0], num_classes), Head(2 * widths[1], num_classes),
                                    Head(2 * widths[2], num_classes), Head(widths[3], num_classes)])
        self.reset_parameters()
        self.to(memory_format=self._memory_format)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Keras init: he_normal kernels, zero biases, BN gamma 1 / beta 0 / stats 0, 1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                he_normal_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The part of the network before the first dropout: (N, C, 32, 32) reflectance -> (the
        features entering ``drop2``, logits of head 1 (N, K)). Deterministic in eval mode, so MC
        dropout computes it once per batch and only :meth:`tail` per pass (``forward`` =
        ``tail(trunk(x))``, the same operations in the same order)."""
        x = x.contiguous(memory_format=self._memory_format)
        x = self.merge(self.blocks[0](x))
        z1 = self.heads[0](x)
        return self.merge(self.blocks[1](x)), z1

    def tail_logits(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """:meth:`trunk`'s output -> logits of the four heads (N, 4, K), order merge1..3, last."""
        x, z1 = state
        x = self.drop2(x)
        z2 = self.heads[1](x)
        x = self.drop3(self.merge(self.blocks[2](x)))
        z3 = self.heads[2](x)
        x = self.blocks[3](x)
        z4 = self.heads[3](x)
        return torch.stack([z1, z2, z3, z4], dim=1)

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 32, 32) reflectance -> logits of the four heads (N, 4, K), order merge1..3, last."""
        return self.tail_logits(self.trunk(x))

    def tail(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """:meth:`trunk`'s output -> canonical natural-log probabilities (N, K)."""
        return fuse_head_logits(self.tail_logits(state), self.fusion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 32, 32) reflectance -> canonical natural-log probabilities (N, K)."""
        return self.tail(self.trunk(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor | np.ndarray, batch_size: int = 1024) -> torch.Tensor:
        """Fused probabilities (N, K) float32 for x (N, C, 32, 32) reflectance, in eval mode.

        No gradients; the previous train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            x = torch.as_tensor(x, dtype=torch.float32)
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(f"expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
            out = [self(x[i:i + batch_size]).exp() for i in range(0, len(x), batch_size)]
            return torch.cat(out, dim=0) if out else torch.empty(0, self.num_classes)
        finally:
            self.train(was_training)

    def inference_copy(self) -> Sen2LCZ:
        """Eval-mode copy with BatchNorm folded into the convs (see :func:`fuse_for_inference`)."""
        return fuse_for_inference(self)


def fuse_head_logits(z: torch.Tensor, fusion: str = "prob_mean") -> torch.Tensor:
    """Heads' logits (N, H, K) -> fused natural-log probabilities (N, K)."""
    if fusion == "prob_mean":
        return torch.logsumexp(torch.log_softmax(z, dim=-1), dim=1) - math.log(z.shape[1])
    if fusion == "logit_mean":
        return torch.log_softmax(z.mean(dim=1), dim=-1)
    if fusion == "last":
        return torch.log_softmax(z[:, -1], dim=-1)
    raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")


def fuse_for_inference(model: Sen2LCZ) -> Sen2LCZ:
    """A copy of ``model`` with every BatchNorm folded into the preceding conv (eval only).

    w' = w * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta, computed in
    float64. Outputs equal the eval-mode model's to float32 rounding; the copy is in eval mode and
    must not be trained (its BN layers are gone).
    """
    fused = copy.deepcopy(model).eval()
    for block in fused.blocks:
        for unit in block:
            conv, bn = unit[0], unit[1]
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            with torch.no_grad():
                w = conv.weight.double() * scale.view(-1, 1, 1, 1)
                b = (conv.bias.double() - bn.running_mean.double()) * scale + bn.bias.double()
                conv.weight.copy_(w.to(conv.weight.dtype))
                conv.bias.copy_(b.to(conv.bias.dtype))
            unit[1] = nn.Identity()
    return fused
