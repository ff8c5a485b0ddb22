"""Sen2LCZ-Net (Qiu et al. 2020) as the authors' seed configures it (PROTOCOL.md).

Defaults: depth 17 -> 4 blocks of 4 x [conv3x3 'same' with bias, BatchNorm, ReLU], widths
16/32/64/128, he_normal init. After blocks 1-3: concat(MaxPool2, AvgPool2) (max first). Dropout 0.2
after merges 2 and 3 only. Fusion: four heads GAP -> Linear(K) on merge 1, merge 2, merge 3 and the
last block; the fused prediction is the mean of the four softmax outputs. Keras BatchNorm
(eps 1e-3, momentum 0.99 == PyTorch momentum 0.01). 788,936 trainable parameters for 10 classes.

Input: (N, bands, 32, 32) float32 reflectance (DN / 10000), no normalisation (as the seed).
``forward`` returns the canonical log-probabilities log(mean_h softmax(z_h)) (N, K), computed
stably as logsumexp_h(log_softmax(z_h)) - log H.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # PyTorch convention: 1 - 0.99

FUSIONS = ("prob_mean", "logit_mean", "last")


def he_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """Keras he_normal: truncated normal (at 2 std) with std sqrt(2 / fan_in)."""
    fan_in = tensor.shape[1] * (tensor[0, 0].numel() if tensor.dim() > 2 else 1)
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # Keras corrects for truncation
    with torch.no_grad():
        return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=True),
            nn.BatchNorm2d(cout, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )


class MaxAvgMerge(nn.Module):
    """concat(MaxPool2d(2), AvgPool2d(2)) along channels, max first (as the Keras code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([nn.functional.max_pool2d(x, 2), nn.functional.avg_pool2d(x, 2)], dim=1)


class Head(nn.Module):
    """Global average pooling -> Linear(K) logits."""

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
        dropout: dropout rate after merges 2 and 3.
        fusion: "prob_mean" (mean of the heads' softmax, default), "logit_mean" (softmax of the
            mean logits: the seed's temperature-scaling variant) or "last" (last head only).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 10, depth: int = 17, width: int = 16,
                 dropout: float = 0.2, fusion: str = "prob_mean") -> None:
        super().__init__()
        if (depth - 1) % 4 != 0 or depth < 5:
            raise ValueError(f"depth must be 4*n+1 with n >= 1, got {depth}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.model_kwargs = dict(num_classes=num_classes, in_channels=in_channels, depth=depth,
                                 width=width, dropout=dropout, fusion=fusion)
        self.num_classes = num_classes
        self.fusion = fusion
        n = (depth - 1) // 4
        widths = [width * 2**b for b in range(4)]
        blocks = []
        cin = in_channels
        for b, w in enumerate(widths):
            layers = []
            for i in range(n):
                layers.append(ConvBNReLU(cin if i == 0 else w, w))
            blocks.append(nn.Sequential(*layers))
            cin = 2 * w if b < 3 else w  # the merge doubles the channels
        self.blocks = nn.ModuleList(blocks)
        self.merge = MaxAvgMerge()
        self.drop2 = nn.Dropout(dropout)
        self.drop3 = nn.Dropout(dropout)
        self.heads = nn.ModuleList([Head(2 * widths[0], num_classes), Head(2 * widths[1], num_classes),
                                    Head(2 * widths[2], num_classes), Head(widths[3], num_classes)])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                he_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 32, 32) -> logits of the four heads (N, 4, K)."""
        x = self.merge(self.blocks[0](x))
        z1 = self.heads[0](x)
        x = self.drop2(self.merge(self.blocks[1](x)))
        z2 = self.heads[1](x)
        x = self.drop3(self.merge(self.blocks[2](x)))
        z3 = self.heads[2](x)
        x = self.blocks[3](x)
        z4 = self.heads[3](x)
        return torch.stack([z1, z2, z3, z4], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 32, 32) reflectance -> canonical log-probabilities (N, K)."""
        z = self.head_logits(x)
        if self.fusion == "prob_mean":
            return torch.logsumexp(torch.log_softmax(z, dim=-1), dim=1) - math.log(z.shape[1])
        if self.fusion == "logit_mean":
            return torch.log_softmax(z.mean(dim=1), dim=-1)
        return torch.log_softmax(z[:, -1], dim=-1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Fused probabilities (N, K) in eval mode (the previous mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            x = torch.as_tensor(x, dtype=torch.float32)
            out = [self(x[i:i + batch_size]).exp() for i in range(0, len(x), batch_size)]
            return torch.cat(out, dim=0) if out else torch.empty(0, self.num_classes)
        finally:
            self.train(was_training)


def fuse_for_inference(model: Sen2LCZ) -> Sen2LCZ:
    """A copy of ``model`` with every BatchNorm folded into the preceding conv (eval only).

    Outputs equal the eval-mode model's to float32 rounding; the copy is in eval mode.
    """
    import copy

    fused = copy.deepcopy(model).eval()
    for block in fused.blocks:
        for unit in block:
            conv, bn = unit[0], unit[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
            unit[1] = nn.Identity()
    return fused
