"""The packed network against the solo Sen2LCZ where equality is exact or nearly so: the state
round trip, one training step (loss, gradients, BatchNorm statistics, dropout masks) from the same
state and batch, Nadam's packed update, and that a member depends on its own seed only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lczldl.data.datamodule import EpochBatchSampler
from lczldl.data.store import LCZDataset, open_store
from lczldl.models.sen2lcz import Sen2LCZ
from lczldl.regimes import regime_targets
from lczldl.training.losses import loss_fn
from lczldl.training.packed import epoch_batches
from lczldl.training.packed_engine import PackEngine, load_split
from lczldl.training.packed_model import PackedSen2LCZ, PackingError
from lczldl.training.schedule import epoch_seed, make_optimizer

#: a reduced Sen2LCZ (2 convs per block) with a strong dropout, so wrong masks move the loss a lot
KW = {"depth": 9, "width": 8, "dropout": 0.5}
MEMBERS = [("onehot", 0), ("dist", 0), ("dist_ls", 1)]
OPT = {"eps": 1e-7, "momentum_decay": 4e-3}


def _solo(seed: int, fmt: str) -> Sen2LCZ:
    torch.manual_seed(seed)
    return Sen2LCZ(**KW, memory_format=fmt)


def _engine(store, members, fmt: str, seed_models: dict | None = None) -> tuple[PackEngine, list[Sen2LCZ]]:
    """A packed engine over ``members`` whose member k starts from the solo model of its seed."""
    targets = [regime_targets(r) for r, _ in members]
    models = [(seed_models or {}).get(s) or _solo(s, fmt) for _, s in members]
    net = PackedSen2LCZ(models[0].model_kwargs, len(members), fmt)
    net.load_members([m.state_dict() for m in models])
    net.set_generators([torch.Generator().manual_seed(epoch_seed(s, 0)) for _, s in members])
    st = open_store(store)
    train = load_split(st, "train", None, [t[0] for t in targets], 0.1, torch.device("cpu"))
    val = load_split(st, "val", None, [t[1] for t in targets], 0.1, torch.device("cpu"))
    eng = PackEngine(net, [loss_fn(t[2]) for t in targets], [t[0] for t in targets], [t[1] for t in targets],
                     train, val, lr=0.002, optimizer=OPT)
    return eng, models


def _bias_before_bn(model: nn.Module) -> set[str]:
    """Keys of conv biases feeding a BatchNorm (zero expected gradient)."""
    keys = set()
    for name, mod in model.named_modules():
        kids = list(mod.named_children())
        for (n0, a), (_, b) in zip(kids, kids[1:], strict=False):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                keys.add(f"{name}.{n0}.bias".lstrip("."))
    return keys


def test_state_round_trip_and_forward_match_the_members() -> None:
    models = [_solo(s, "channels_last") for s in (0, 1, 2)]
    g = torch.Generator().manual_seed(5)
    for m in models:   # non-trivial BatchNorm statistics
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g))
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    net = PackedSen2LCZ(models[0].model_kwargs, 3)
    net.load_members([m.state_dict() for m in models])
    for k, state in enumerate(net.member_states()):
        assert all(torch.equal(state[key], models[k].state_dict()[key]) for key in state)
    x = torch.rand(3, 5, 10, 32, 32, generator=g) * 0.5
    from lczldl.training.packed_model import pack_images

    with torch.no_grad():
        out = net.eval()(pack_images(x, net.memory_format))
        for k, m in enumerate(models):
            torch.testing.assert_close(out[k], m.eval()(x[k]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", ["channels_last", "contiguous"])
def test_one_step_matches_solo_loss_gradients_bn_stats_and_dropout(tiny_store, fmt) -> None:
    """(a) From the same state and batch, with dropout on (each member's masks from its own
    generator seeded as the solo run seeds its global RNG): loss, every gradient (relative to the
    tensor's largest entry; conv biases in front of BatchNorm, whose expected gradient is zero,
    against the largest gradient of the member) and the BatchNorm running statistics equal the
    solo model's within 1e-4."""
    eng, models = _engine(tiny_store, MEMBERS, fmt)
    full, _ = epoch_batches([s for _, s in MEMBERS], 96, 16, 0)
    eng.train_epoch(full[:1], None, lr=0.002)
    packed_loss = eng.epoch_losses(16)
    packed_grads = {n: p.grad for n, p in eng.net.net.named_parameters()}
    packed_bn = eng.net.member_states()
    zero_mean = _bias_before_bn(models[0])
    for k, ((regime, seed), model) in enumerate(zip(MEMBERS, models, strict=True)):
        train_t, _, loss = regime_targets(regime)
        batch = LCZDataset(tiny_store, "train", target=train_t)[full[0, k].numpy()]
        model.train()
        torch.manual_seed(epoch_seed(seed, 0))          # the solo module's reseed at the first step
        value = loss_fn(loss)(model(batch["image"]), batch["target"])
        value.backward()
        assert abs(packed_loss[k] - value.item()) <= 1e-4
        scale = max(p.grad.abs().max().item() for p in model.parameters())
        for name, p in model.named_parameters():
            got = eng.net._split(name, packed_grads[name])[k]
            ref = p.grad
            tol = 1e-4 * (scale if name in zero_mean else ref.abs().max().item())
            assert (got - ref).abs().max().item() <= tol, (k, name)
        for key, ref in model.state_dict().items():
            if "running_" in key:
                assert (packed_bn[k][key] - ref).abs().max().item() <= 1e-4 * ref.abs().max().item(), key
    assert zero_mean and len(zero_mean) == 8                      # 4 blocks x 2 convs, all before BN


def test_packed_nadam_update_equals_each_members_update() -> None:
    """Nadam on the packed tensors equals Nadam on each member's (same gradients, three steps):
    the update is elementwise given the per-tensor step counters, which members share."""
    models = [_solo(s, "channels_last") for s in (0, 1)]
    net = PackedSen2LCZ(models[0].model_kwargs, 2)
    net.load_members([m.state_dict() for m in models])
    solo_opts = [make_optimizer(m.parameters(), lr=0.002, **OPT) for m in models]
    opt = make_optimizer(net.parameters(), lr=0.002, **OPT)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for m in models:
            for p in m.parameters():
                p.grad = torch.randn(p.shape, generator=g) * 1e-2
        for name, p in net.net.named_parameters():
            p.grad = net._join(name, [dict(m.named_parameters())[name].grad for m in models])
        opt.step()
        for o in solo_opts:
            o.step()
    for k, state in enumerate(net.member_states()):
        for name, p in models[k].named_parameters():
            torch.testing.assert_close(state[name], p.detach(), rtol=1e-6, atol=1e-9)
    # and the optimizer state unpacks into each member's exactly as its own optimizer holds it
    for k, st in enumerate(net.member_optimizer_states(opt.state_dict()["state"])):
        own = solo_opts[k].state_dict()["state"]
        assert st.keys() == own.keys()
        for i in own:
            for key in own[i]:
                torch.testing.assert_close(st[i][key], own[i][key], rtol=1e-6, atol=1e-12)


def test_a_member_depends_on_its_own_seed_only(tiny_store) -> None:
    """(c) With dropout on, reordering the pack changes no member's first-step loss, and each
    member's batches are the solo run's of its seed."""
    order_a = MEMBERS
    order_b = [MEMBERS[2], MEMBERS[0], MEMBERS[1]]
    losses = {}
    for order in (order_a, order_b):
        eng, _ = _engine(tiny_store, order, "channels_last")
        full, last = epoch_batches([s for _, s in order], 96, 16, 0)
        eng.train_epoch(full[:1], None, lr=0.002)
        for m, v in zip(order, eng.epoch_losses(16), strict=True):
            losses.setdefault(m, []).append(v)
        for k, (_, seed) in enumerate(order):
            sampler = EpochBatchSampler(96, 16, shuffle=True, seed=seed)
            sampler.set_epoch(0)
            assert all(np.array_equal(a, b) for a, b in zip(full[:, k].numpy(), list(sampler), strict=True))
    for m, (a, b) in losses.items():
        assert abs(a - b) <= 1e-6, m
    # the same seed under two regimes sees the same batch and masks but its own target: differing
    assert abs(losses[("onehot", 0)][0] - losses[("dist", 0)][0]) > 1e-3


def test_unknown_stateful_layer_fails_loudly(monkeypatch) -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.w

    orig = Sen2LCZ.__init__

    def patched(self, *a, **kw):
        orig(self, *a, **kw)
        self.drop2 = Scale()

    monkeypatch.setattr(Sen2LCZ, "__init__", patched)
    with pytest.raises(PackingError, match="Scale"):
        PackedSen2LCZ({"depth": 5, "width": 2}, 2)


def test_epoch_seed_is_the_solo_modules_dropout_reseed() -> None:
    """The members' generators are reseeded with ``epoch_seed``; the solo LCZModule reseeds the
    global RNG at an epoch's first batch: both must be the same function of (seed, epoch, rank)."""
    from types import SimpleNamespace

    from lczldl.training.module import LCZModule

    module = LCZModule({"depth": 5, "width": 2}, loss="ce", lr=0.002, lr_decay=0.5, lr_step_epochs=5,
                       nadam_eps=1e-7, nadam_momentum_decay=4e-3, seed=4)
    with torch.random.fork_rng(devices=[]):
        for epoch, rank in ((0, 0), (3, 0), (7, 1)):
            module._trainer = SimpleNamespace(current_epoch=epoch, global_rank=rank)
            module.on_train_batch_start({}, 0)
            assert torch.initial_seed() == epoch_seed(4, epoch, rank)
