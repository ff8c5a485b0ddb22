"""Owns the packed network: K Sen2LCZ members as one module, and the exact map between the packed
state (parameters, buffers, Nadam state) and each member's own Sen2LCZ state.

The packed network is Sen2LCZ itself (its module tree and its ``head_logits``) with each leaf
module swapped for a packed counterpart built from the K members' leaves:

- ``nn.Conv2d(cin, cout)`` -> grouped ``nn.Conv2d(K*cin, K*cout, groups=K*groups)``: member k owns
  channels ``[k*C, (k+1)*C)`` of every activation; weights concatenated along dim 0.
- ``nn.BatchNorm2d(C)`` -> ``nn.BatchNorm2d(K*C)``: statistics are per channel, so per member.
- ``nn.Linear(i, o)`` -> :class:`PackedLinear` (weight (K, o, i), one batched matmul).
- ``nn.Dropout(p)`` -> :class:`PackedDropout`: each member's mask drawn from its own generator,
  with the shape and memory format a solo run draws (so a member's masks are the solo run's).
- parameter-free layout modules (the merge concat(max, avg)) -> :class:`MemberFolded`: the member
  module itself applied to the members folded into the batch dimension.
- elementwise modules (ReLU, Identity) are kept.

Any other leaf (or a module holding its own parameters) raises :class:`PackingError`, so a change
to Sen2LCZ either propagates or fails loudly; tests/training/test_packed_equivalence.py checks the
packed function, gradients and BatchNorm statistics against the solo model.

Input of the packed forward: (B, K*C, 32, 32), member k's batch in channels ``[k*C, (k+1)*C)``
(:func:`pack_images`). Output: log-probabilities (K, B, classes).

A packed network holds no weights of its own: its layers are allocated, not initialised
(``PackedLinear`` is ``torch.empty``), so it refuses to compute (:class:`PackingError`) until
:meth:`PackedSen2LCZ.load_members` gave it K member states; :func:`member_init_states` builds the
states of fresh members (a Sen2LCZ initialised after seeding with each member's seed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lczldl.models.sen2lcz import MEMORY_FORMATS, Sen2LCZ, fuse_head_logits

#: how a packed tensor holds the members' tensors: concatenated along dim 0, stacked on a new
#: dim 0, or one value shared by all (BatchNorm's num_batches_tracked: equal for members that
#: trained the same steps)
CAT, STACK, SHARED = "cat", "stack", "shared"
ELEMENTWISE = (nn.ReLU, nn.Identity)


class PackingError(ValueError):
    """A module, state or optimizer state that cannot be packed (or unpacked) exactly."""


class PackedLinear(nn.Module):
    """K linear layers: (B, K*in) -> (B, K*out), member k on features [k*in, (k+1)*in)."""

    layout = {"weight": STACK, "bias": STACK}

    def __init__(self, k: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        xs = x.reshape(b, self.k, self.in_features).transpose(0, 1)           # (K, B, in)
        y = torch.baddbmm(self.bias.unsqueeze(1), xs, self.weight.transpose(1, 2))  # (K, B, out)
        return y.transpose(0, 1).reshape(b, self.k * self.out_features)


class PackedDropout(nn.Module):
    """Dropout with one generator per member: member k's mask of each call is drawn like a solo
    ``F.dropout`` on CPU draws it (``empty_like(x_k).bernoulli_(1 - p)``, x_k (B, C, h, w) in the
    solo's memory format), from ``generators[k]``. Without generators (or p = 0, eval) identity."""

    def __init__(self, k: int, p: float, memory_format: torch.memory_format) -> None:
        super().__init__()
        self.k, self.p, self.memory_format = k, float(p), memory_format
        self.generators: list[torch.Generator] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generators is None or len(self.generators) != self.k:
            raise PackingError("PackedDropout needs one generator per member (PackedSen2LCZ.set_generators)")
        b, kc, h, w = x.shape
        c = kc // self.k
        masks = [torch.empty((b, c, h, w), dtype=x.dtype, device=x.device,
                             memory_format=self.memory_format).bernoulli_(1.0 - self.p, generator=g)
                 for g in self.generators]
        noise = torch.cat(masks, dim=1).div_(1.0 - self.p)
        return x * noise


class MemberFolded(nn.Module):
    """Applies a parameter-free per-sample member module (N, C, h, w) -> (N, C', h', w') to the K
    members at once by folding them into the batch dimension: (B, K*C, ...) -> (B*K, C, ...)."""

    def __init__(self, module: nn.Module, k: int, memory_format: torch.memory_format) -> None:
        super().__init__()
        self.module, self.k, self.memory_format = module, k, memory_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, kc, h, w = x.shape
        folded = x.reshape(b, self.k, kc // self.k, h, w).reshape(b * self.k, kc // self.k, h, w)
        y = self.module(folded.contiguous(memory_format=self.memory_format))
        c2, h2, w2 = y.shape[1:]
        return y.reshape(b, self.k * c2, h2, w2).contiguous(memory_format=self.memory_format)


def _pack_conv(mods: Sequence[nn.Conv2d]) -> nn.Conv2d:
    m, k = mods[0], len(mods)
    if m.padding_mode != "zeros":
        raise PackingError(f"cannot pack {m} (padding_mode {m.padding_mode!r})")
    packed = nn.Conv2d(k * m.in_channels, k * m.out_channels, m.kernel_size, stride=m.stride,
                       padding=m.padding, dilation=m.dilation, groups=k * m.groups, bias=m.bias is not None)
    packed.layout = {"weight": CAT, "bias": CAT}
    return packed


def _pack_bn(mods: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    m, k = mods[0], len(mods)
    packed = nn.BatchNorm2d(k * m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                            track_running_stats=m.track_running_stats)
    packed.layout = {"weight": CAT, "bias": CAT, "running_mean": CAT, "running_var": CAT,
                     "num_batches_tracked": SHARED}
    return packed


def _pack_linear(mods: Sequence[nn.Linear]) -> PackedLinear:
    m = mods[0]
    if m.bias is None:
        raise PackingError("cannot pack a Linear without bias")
    return PackedLinear(len(mods), m.in_features, m.out_features)


#: leaf type -> builder of its packed counterpart (K same-shaped member leaves -> one module)
PACKERS: dict[type, Callable[[Sequence[nn.Module]], nn.Module]] = {
    nn.Conv2d: _pack_conv, nn.BatchNorm2d: _pack_bn, nn.Linear: _pack_linear,
}


def _packed_leaf(mods: Sequence[nn.Module], fmt: torch.memory_format) -> nn.Module:
    """The packed counterpart of K corresponding member leaves (same type and shape)."""
    m, k = mods[0], len(mods)
    if type(m) in PACKERS:
        return PACKERS[type(m)](mods)
    if isinstance(m, ELEMENTWISE):
        return copy.deepcopy(m)
    if isinstance(m, nn.Dropout):
        return PackedDropout(k, m.p, fmt)
    if not list(m.parameters(recurse=False)) and not list(m.buffers(recurse=False)):
        return MemberFolded(copy.deepcopy(m), k, fmt)
    raise PackingError(f"Sen2LCZ has a {type(m).__name__} layer with state and no packed form; "
                       "add one to lczldl.training.packed_model.PACKERS")


class PackedSen2LCZ(nn.Module):
    """K Sen2LCZ members (same ``model_kwargs``) as one network; see the module docstring.

    ``net`` is a Sen2LCZ whose leaves are packed; :meth:`load_members` / :meth:`member_states`
    copy states in and out exactly (state-dict keys are the members' own).
    """

    def __init__(self, model_kwargs: dict, k: int, memory_format: str | None = None) -> None:
        super().__init__()
        if k < 1:
            raise PackingError(f"a pack needs at least one member, got {k}")
        kwargs = dict(model_kwargs)
        if memory_format is not None:
            kwargs["memory_format"] = memory_format
        template = Sen2LCZ(**kwargs)
        self.k, self.model_kwargs = int(k), dict(model_kwargs)
        self.memory_format = MEMORY_FORMATS[template.model_kwargs["memory_format"]]
        self.net = copy.deepcopy(template)
        self.layout: dict[str, str] = {}      # member state key -> CAT / STACK / SHARED
        for name, mod in template.named_modules():
            children = list(mod.children())
            if children:
                if list(mod.parameters(recurse=False)) or list(mod.buffers(recurse=False)):
                    raise PackingError(f"{name or 'Sen2LCZ'} ({type(mod).__name__}) holds its own state "
                                       "beside submodules; cannot pack it")
                continue
            packed = _packed_leaf([mod] * self.k, self.memory_format)
            for local, mode in getattr(packed, "layout", {}).items():
                self.layout[f"{name}.{local}"] = mode
            parent_name, _, attr = name.rpartition(".")
            parent = self.net.get_submodule(parent_name) if parent_name else self.net
            setattr(parent, attr, packed)
        member_keys = set(template.state_dict())
        if member_keys != set(self.layout):
            raise PackingError(f"packed layout misses member state {sorted(member_keys ^ set(self.layout))}")
        self.net.to(memory_format=self.memory_format)
        self.member_keys = list(template.state_dict())
        self.param_keys = [n for n, _ in template.named_parameters()]
        #: True once :meth:`load_members` filled every tensor (the layers are only allocated before)
        self.loaded = False

    def require_loaded(self) -> None:
        """PackingError unless :meth:`load_members` initialised the network."""
        if not self.loaded:
            raise PackingError("packed network has no member weights (its layers are allocated, not "
                               "initialised); call load_members(states) first, e.g. with "
                               "member_init_states(model_kwargs, seeds)")

    # ------------------------------------------------------------------ function
    def set_generators(self, generators: Sequence[torch.Generator]) -> None:
        """One dropout generator per member (member order); reseed them, not the global RNG."""
        for m in self.modules():
            if isinstance(m, PackedDropout):
                m.generators = list(generators)

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K*C, 32, 32) packed images -> the heads' logits (K, B, heads, classes)."""
        self.require_loaded()
        z = self.net.head_logits(x)                                   # (B, heads, K*classes)
        b, h, _ = z.shape
        return z.reshape(b, h, self.k, -1).permute(2, 0, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K*C, 32, 32) packed images -> fused log-probabilities (K, B, classes)."""
        self.require_loaded()
        z = self.head_logits(x)
        k, b, h, c = z.shape
        return fuse_head_logits(z.reshape(k * b, h, c), self.net.fusion).reshape(k, b, c)

    # ------------------------------------------------------------------ state in / out
    def _split(self, key: str, t: torch.Tensor) -> list[torch.Tensor]:
        mode = self.layout[key]
        if mode == SHARED:
            return [t] * self.k
        if mode == STACK:
            return list(t.unbind(0))
        return list(t.chunk(self.k, dim=0))

    def _join(self, key: str, ts: Sequence[torch.Tensor]) -> torch.Tensor:
        mode = self.layout[key]
        if mode == SHARED:
            if any(not torch.equal(t.cpu(), ts[0].cpu()) for t in ts[1:]):
                raise PackingError(f"{key}: members differ ({[t.item() for t in ts]}); only members that "
                                   "trained the same number of steps can share a pack")
            return ts[0]
        return torch.stack(list(ts)) if mode == STACK else torch.cat(list(ts), dim=0)

    @torch.no_grad()
    def load_members(self, states: Sequence[dict[str, torch.Tensor]]) -> None:
        """Copy K member state dicts (Sen2LCZ keys) into the packed network."""
        if len(states) != self.k:
            raise PackingError(f"expected {self.k} member states, got {len(states)}")
        own = self.net.state_dict()
        for key in self.member_keys:
            own[key].copy_(self._join(key, [s[key] for s in states]))
        self.loaded = True

    @torch.no_grad()
    def member_states(self) -> list[dict[str, torch.Tensor]]:
        """The K members' state dicts (Sen2LCZ keys), detached copies on the CPU."""
        own = self.net.state_dict()
        out: list[dict[str, torch.Tensor]] = [{} for _ in range(self.k)]
        for key in self.member_keys:
            for i, t in enumerate(self._split(key, own[key])):
                out[i][key] = t.detach().to("cpu", copy=True)
        return out

    def pack_optimizer_state(self, states: Sequence[dict[int, dict[str, torch.Tensor]]]) -> dict:
        """K member Nadam ``state`` dicts (index = Sen2LCZ parameter order) -> the packed ``state``.

        Per-tensor scalars (``step``, ``mu_product``) must agree: Nadam's update is elementwise
        given them, so the packed update equals each member's. Empty states (fresh) stay empty."""
        if not any(states):
            return {}
        if not all(states):
            raise PackingError("members with and without optimizer state cannot share a pack")
        packed: dict[int, dict[str, torch.Tensor]] = {}
        for i, key in enumerate(self.param_keys):
            entry = {}
            for name, v0 in states[0][i].items():
                vals = [s[i][name] for s in states]
                if v0.dim() == 0:
                    if any(not torch.equal(v.cpu(), v0.cpu()) for v in vals[1:]):
                        raise PackingError(f"optimizer {name} differs between members; only members at "
                                           "the same step can share a pack")
                    entry[name] = v0.clone()
                else:
                    entry[name] = self._join(key, vals)
            packed[i] = entry
        return packed

    def member_optimizer_states(self, packed: dict[int, dict[str, torch.Tensor]]) -> list[dict]:
        """The packed Nadam ``state`` -> K member ``state`` dicts (CPU copies, member order)."""
        out: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in range(self.k)]
        for i, key in enumerate(self.param_keys):
            if i not in packed:
                continue
            for name, v in packed[i].items():
                parts = [v] * self.k if v.dim() == 0 else self._split(key, v)
                for m, part in enumerate(parts):
                    out[m].setdefault(i, {})[name] = part.detach().to("cpu", copy=True)
        return out


def member_init_states(model_kwargs: dict, seeds: Sequence[int]) -> list[dict[str, torch.Tensor]]:
    """The initial state of a fresh Sen2LCZ(**model_kwargs) for each seed, built after
    ``torch.manual_seed(seed)`` inside a fork of the CPU RNG (the global RNG is left as it was)."""
    states = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            states.append({k: v.detach().clone() for k, v in Sen2LCZ(**model_kwargs).state_dict().items()})
    return states


def pack_images(images: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """Member batches (K, B, C, H, W) -> the packed input (B, K*C, H, W) in ``memory_format``."""
    k, b, c, h, w = images.shape
    if memory_format == torch.channels_last:
        nhwc = images.permute(1, 3, 4, 0, 2).contiguous()                # (B, H, W, K, C)
        return nhwc.reshape(b, h, w, k * c).permute(0, 3, 1, 2)
    return images.transpose(0, 1).reshape(b, k * c, h, w)
