"""Sen2LCZ-Net: size, shapes, fusion maths, Keras BatchNorm semantics, init, BN folding, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lczldl.errors import ModelError
from lczldl.models.io import load_model, read_model_meta, save_model
from lczldl.models.sen2lcz import Sen2LCZ, fuse_for_inference


def _x(n: int = 4, c: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, 32, 32, generator=g) * 0.5


def _randomise_bn(model: nn.Module, seed: int = 1) -> None:
    """Non-trivial BN parameters and running statistics (fresh BN would make folding trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(0.2 + torch.rand(c, generator=g) * 2)


def test_parameter_count_matches_the_paper_model() -> None:
    model = Sen2LCZ()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 788_936
    # Keras counts 790,856 = trainable + BN moving mean/var (2 x 960 BN channels)
    bn_stats = sum(m.running_mean.numel() + m.running_var.numel()
                   for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert 788_936 + bn_stats == 790_856


def test_parameter_count_by_hand_for_a_small_config() -> None:
    # depth 5 -> one conv per block; width 2 -> widths 2, 4, 8, 16; 3 bands; 4 classes
    model = Sen2LCZ(num_classes=4, in_channels=3, depth=5, width=2)
    convs = [(3, 2), (4, 4), (8, 8), (16, 16)]  # (in, out): each merge doubles the channels
    n = sum(9 * i * o + o + 2 * o for i, o in convs)  # kernel + bias + BN gamma/beta
    n += sum(c * 4 + 4 for c in (4, 8, 16, 16))      # heads on merges 1-3 and the last block
    assert sum(p.numel() for p in model.parameters()) == n


@pytest.mark.parametrize(("classes", "bands", "depth", "width"),
                         [(10, 10, 17, 16), (17, 10, 17, 16), (10, 4, 9, 8), (17, 13, 5, 4)])
def test_shapes(classes: int, bands: int, depth: int, width: int) -> None:
    model = Sen2LCZ(num_classes=classes, in_channels=bands, depth=depth, width=width).eval()
    x = _x(3, bands)
    with torch.no_grad():
        assert model(x).shape == (3, classes)
        assert model.head_logits(x).shape == (3, 4, classes)
    p = model.predict_proba(x)
    assert p.shape == (3, classes) and p.dtype == torch.float32
    np.testing.assert_allclose(p.sum(1).numpy(), 1.0, atol=1e-6)
    assert model.model_kwargs["num_classes"] == classes and model.model_kwargs["in_channels"] == bands


def test_forward_is_log_of_mean_softmax_of_the_heads() -> None:
    model = Sen2LCZ().eval()
    _randomise_bn(model)
    x = _x(6)
    with torch.no_grad():
        z = model.head_logits(x).double().numpy()
        logp = model(x).double().numpy()
    # independent computation in numpy, float64
    e = np.exp(z - z.max(axis=2, keepdims=True))
    soft = e / e.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(logp, np.log(soft.mean(axis=1)), atol=1e-5)
    np.testing.assert_allclose(model.predict_proba(x).numpy(), soft.mean(axis=1), atol=1e-6)


def test_log_probs_stay_finite_for_saturated_heads() -> None:
    model = Sen2LCZ().eval()
    with torch.no_grad():
        model.heads[0].fc.bias.copy_(torch.tensor([200.0] + [0.0] * 9))  # head 1 saturates
    with torch.no_grad():
        logp = model(_x(2))
    assert torch.isfinite(logp).all()
    np.testing.assert_allclose(torch.logsumexp(logp, 1).numpy(), 0.0, atol=1e-5)


def test_other_fusions() -> None:
    base = Sen2LCZ().eval()
    x = _x(3)
    with torch.no_grad():
        z = base.head_logits(x)
        for fusion, expected in [("logit_mean", F.log_softmax(z.mean(1), -1)),
                                 ("last", F.log_softmax(z[:, 3], -1))]:
            m = Sen2LCZ(fusion=fusion).eval()
            m.load_state_dict(base.state_dict())
            torch.testing.assert_close(m(x), expected)


def test_architecture_against_a_functional_forward() -> None:
    """Rebuild the forward pass from the documented architecture with plain functional ops."""
    model = Sen2LCZ(memory_format="contiguous").eval()
    _randomise_bn(model)
    x = _x(3)
    units = [u for b in model.blocks for u in b]
    h = x
    feats = []
    for b in range(4):
        for u in units[4 * b: 4 * b + 4]:
            conv, bn = u[0], u[1]
            h = F.conv2d(h, conv.weight, conv.bias, padding=1)
            h = (h - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-3)
            h = F.relu(h * bn.weight[:, None, None] + bn.bias[:, None, None])
        if b < 3:
            h = torch.cat([F.max_pool2d(h, 2), F.avg_pool2d(h, 2)], 1)
        feats.append(h)
    probs = torch.stack([F.softmax(hd.fc(f.mean((2, 3))), -1) for hd, f in zip(model.heads, feats, strict=True)])
    with torch.no_grad():
        torch.testing.assert_close(model(x).exp(), probs.mean(0).detach(), atol=1e-5, rtol=1e-4)
    assert [f.shape[1:] for f in feats] == [(32, 16, 16), (64, 8, 8), (128, 4, 4), (128, 4, 4)]


def test_keras_batchnorm_settings_and_momentum() -> None:
    model = Sen2LCZ()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 16 and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    # one training forward: running = 0.99 * running + 0.01 * batch statistic (Keras momentum 0.99)
    x = _x(8)
    first_conv = model.blocks[0][0][0]
    with torch.no_grad():
        a = first_conv(x)
        model.train()(x)
    np.testing.assert_allclose(bns[0].running_mean.numpy(), 0.01 * a.mean((0, 2, 3)).numpy(), atol=1e-6)
    var = a.var((0, 2, 3), unbiased=True)
    np.testing.assert_allclose(bns[0].running_var.numpy(), (0.99 + 0.01 * var).numpy(), rtol=1e-5)


def test_he_normal_init_statistics() -> None:
    torch.manual_seed(123)
    model = Sen2LCZ()
    for w, fan_in in [(model.blocks[3][1][0].weight, 128 * 9), (model.blocks[2][0][0].weight, 64 * 9),
                      (model.heads[2].fc.weight, 128)]:
        sd = math.sqrt(2.0 / fan_in)
        v = w.detach().flatten()
        assert abs(v.std().item() / sd - 1) < (0.03 if v.numel() > 10_000 else 0.15)
        assert abs(v.mean().item()) < 0.05 * sd * (1 if v.numel() > 10_000 else 4)
        assert v.abs().max().item() <= 2 * sd / 0.87962566103423978 + 1e-7  # truncated at 2 sigma
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert torch.count_nonzero(m.bias) == 0


def test_dropout_modules_allow_mc_dropout() -> None:
    model = Sen2LCZ()
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.2 for d in drops)
    model.eval()
    _randomise_bn(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _x(4)
    with torch.no_grad():
        det = model(x)
        torch.testing.assert_close(model(x), det)
        for d in drops:
            d.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
    assert (a - b).abs().max() > 1e-4  # stochastic
    for k, v in model.state_dict().items():  # BN statistics untouched (BN stayed in eval mode)
        torch.testing.assert_close(v, before[k])


def test_predict_proba_restores_mode_and_takes_numpy() -> None:
    model = Sen2LCZ().train()
    x = _x(5).numpy()
    p1 = model.predict_proba(x, batch_size=2)
    assert model.training
    p2 = model.eval().predict_proba(torch.from_numpy(x))
    assert not model.training
    torch.testing.assert_close(p1, p2)
    assert model.predict_proba(np.zeros((0, 10, 32, 32), np.float32)).shape == (0, 10)
    with pytest.raises(ValueError, match="expected input"):
        model.predict_proba(np.zeros((2, 7, 32, 32), np.float32))


def test_memory_format_changes_speed_not_results() -> None:
    a = Sen2LCZ().eval()
    b = Sen2LCZ(memory_format="contiguous").eval()
    b.load_state_dict(a.state_dict())
    assert a.blocks[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    x = _x(4)
    torch.testing.assert_close(a.predict_proba(x), b.predict_proba(x), atol=1e-6, rtol=0)


def test_bn_folding_gives_the_same_probabilities() -> None:
    model = Sen2LCZ()
    _randomise_bn(model)
    model.train()
    x = _x(8)
    fused = fuse_for_inference(model)
    assert model.training  # the original is untouched
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    np.testing.assert_allclose(fused.predict_proba(x).numpy(), model.predict_proba(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(model.inference_copy().predict_proba(x).numpy(),
                               model.predict_proba(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(depth=16), dict(depth=1), dict(fusion="max"), dict(num_classes=1),
                                    dict(dropout=1.0), dict(memory_format="nhwc"), dict(width=0)])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Sen2LCZ(**kwargs)


def test_save_load_round_trip(tmp_path) -> None:
    model = Sen2LCZ(num_classes=17, fusion="logit_mean")
    _randomise_bn(model)
    model.meta = {"source": "test"}
    path = save_model(model, tmp_path / "sub" / "m.pt", meta={"note": "x"})
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left
    loaded = load_model(path)
    assert not loaded.training and loaded.model_kwargs == model.model_kwargs
    x = _x(3)
    torch.testing.assert_close(loaded.predict_proba(x), model.predict_proba(x), atol=0, rtol=0)
    meta = read_model_meta(path)
    assert meta["source"] == "test" and meta["note"] == "x" and "torch_version" in meta


def test_load_lightning_checkpoint(tmp_path) -> None:
    model = Sen2LCZ()
    _randomise_bn(model)
    ckpt = {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_kwargs": dict(model.model_kwargs), "regime": "dist"}}
    torch.save(ckpt, tmp_path / "best.ckpt")
    x = _x(3)
    torch.testing.assert_close(load_model(tmp_path / "best.ckpt").predict_proba(x), model.predict_proba(x))


def test_bad_checkpoints_raise_model_error(tmp_path) -> None:
    model = Sen2LCZ()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": 1}, tmp_path / "nostate.pt")
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {}}, tmp_path / "nokw.ckpt")
    torch.save({"format": "lczldl-model", "version": 1, "model_kwargs": {**model.model_kwargs, "num_classes": 17},
                "state_dict": model.state_dict()}, tmp_path / "mismatch.pt")
    torch.save({"format": "lczldl-model", "version": 1, "model_kwargs": {"colour": "red"},
                "state_dict": model.state_dict()}, tmp_path / "badkw.pt")
    torch.save({"format": "lczldl-model", "version": 99, "model_kwargs": {},
                "state_dict": {}}, tmp_path / "future.pt")
    for name in ["junk.pt", "nostate.pt", "nokw.ckpt", "mismatch.pt", "badkw.pt", "future.pt", "missing.pt"]:
        with pytest.raises(ModelError) as err:
            load_model(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
