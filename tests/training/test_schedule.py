import math

import numpy as np
import pytest
import torch

from lczldl.training.schedule import lr_factor, make_optimizer, make_scheduler

#: the paper's Nadam (Keras defaults but lr 0.002), written out: the functions have no defaults
NADAM = {"lr": 0.002, "eps": 1e-7, "momentum_decay": 0.004}


def test_lr_factor_values():
    assert [0.002 * lr_factor(e, 0.5, 5) for e in (0, 4, 5, 9, 10, 14, 15, 299)] == pytest.approx(
        [0.002, 0.002, 0.001, 0.001, 0.0005, 0.0005, 0.00025, 0.002 * 0.5 ** 59])


def test_scheduler_steps_per_epoch():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = make_optimizer([w], **NADAM)
    sched = make_scheduler(opt, 0.5, 5)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.002] * 5 + [0.001] * 5 + [0.0005] * 2)


def _keras_nadam(grads, lr=0.002, b1=0.9, b2=0.999, eps=1e-7, decay=0.004):
    """Keras 2.4 Nadam (tf.keras.optimizers.Nadam._resource_apply_dense), written from its formulas."""
    var, m, v, m_sched = 1.0, 0.0, 0.0, 1.0
    out = []
    for t, g in enumerate(grads, start=1):
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * decay))
        m_sched_new = m_sched * mu_t
        m_sched_next = m_sched_new * mu_next
        m_sched = m_sched_new
        g_prime = g / (1 - m_sched_new)
        m = b1 * m + (1 - b1) * g
        m_prime = m / (1 - m_sched_next)
        v = b2 * v + (1 - b2) * g * g
        v_prime = v / (1 - b2 ** t)
        m_bar = (1 - mu_t) * g_prime + mu_next * m_prime
        var = var - lr * m_bar / (math.sqrt(v_prime) + eps)
        out.append(var)
    return np.array(out)


def _torch_path(grads, **kw):
    w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = make_optimizer([w], **{**NADAM, **kw})
    got = []
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        got.append(w.item())
    return np.array(got)


def test_torch_nadam_matches_keras_nadam():
    grads = np.random.default_rng(0).normal(size=50)
    want = _keras_nadam(grads)
    np.testing.assert_allclose(_torch_path(grads), want, rtol=0, atol=1e-10)
    # the tolerance separates torch's own default epsilon (1e-8) from Keras's
    assert np.abs(_torch_path(grads, eps=1e-8) - want).max() > 1e-9
