"""Evaluation's device path on CPU: the networks run where their parameters are (CUDA when
there is one: evaluation.predictor.eval_device), the results come back as numpy, and MC-dropout
passes batched into one forward (the accelerator path, forced here with ``pass_batch``) agree
with passes run one at a time within Monte Carlo error. The CUDA-against-CPU comparison is in
benchmarks/gpu_check.py (it needs a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lczldl.evaluation import predictor as P
from lczldl.evaluation.predictor import Predictor, predict_log_probs
from lczldl.models.sen2lcz import Sen2LCZ

PASSES = 32


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_and_images():
    torch.manual_seed(0)
    model = Sen2LCZ(depth=5, width=2, dropout=0.3).eval()
    images = torch.rand(24, 10, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.4
    return model, images


def _mc(model, images, pass_batch, seed):
    return Predictor([model], mc_passes=PASSES, pass_batch=pass_batch).predict(images, batch_size=16, seed=seed)


def test_cpu_runs_passes_one_at_a_time_by_default(model_and_images):
    model, images = model_and_images
    assert P.eval_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert Predictor([model], mc_passes=PASSES)._chunk(torch.device("cpu"), 16, PASSES) == 1
    assert Predictor([model], mc_passes=PASSES)._chunk(torch.device("cuda"), 512, 20) == 20
    assert Predictor([model], mc_passes=PASSES)._chunk(torch.device("cuda"), P.PASS_ROWS, 20) == 1
    a = Predictor([model], mc_passes=4).predict(images, batch_size=16, seed=0)
    b = Predictor([model], mc_passes=4, pass_batch=1).predict(images, batch_size=16, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_batched_passes_agree_with_sequential_passes_within_mc_error(model_and_images):
    model, images = model_and_images
    seq0, seq1 = _mc(model, images, 1, 0), _mc(model, images, 1, 1)
    spread = np.abs(seq0["probs"] - seq1["probs"]).mean()          # two independent MC estimates
    assert spread > 0
    for chunk in (PASSES, 12):                                     # all passes at once; uneven chunks
        batched = _mc(model, images, chunk, 0)
        diff = np.abs(batched["probs"] - seq0["probs"]).mean()
        assert 0 < diff < 2 * spread, (chunk, diff, spread)
        np.testing.assert_allclose(batched["probs"].sum(1), 1.0, atol=1e-9)
        assert (batched["mutual_info"] > 0).mean() > 0.9           # passes differ: each row its masks
        np.testing.assert_allclose(batched["mutual_info"].mean(), seq0["mutual_info"].mean(), rtol=0.15)
    # the criterion's power: one shared mask for all passes (the mean is then one pass) is caught
    one = Predictor([model], mc_passes=1).predict(images, batch_size=16, seed=0)["probs"]
    assert np.abs(one - seq0["probs"]).mean() > 2 * spread


def test_deterministic_predictions_come_back_as_numpy_from_the_models_device(model_and_images, monkeypatch):
    model, images = model_and_images
    lp = predict_log_probs(model, [images[:10], images[10:]])
    assert isinstance(lp, np.ndarray) and lp.shape == (24, 10) and lp.dtype == np.float32
    ref = model.inference_copy()(images).detach().numpy()
    np.testing.assert_allclose(lp, ref, rtol=0, atol=1e-6)
    plain = Predictor([model]).predict(images, batch_size=16)
    np.testing.assert_allclose(plain["probs"], np.exp(model(images).detach().double().numpy()), atol=1e-12)


def test_evaluation_loads_the_network_onto_the_evaluation_device(tmp_path, monkeypatch):
    from lczldl.evaluation import runs
    from lczldl.models.io import save_model

    path = save_model(Sen2LCZ(depth=5, width=2), tmp_path / "m.pt")
    seen = []

    def device():
        seen.append(True)
        return torch.device("cpu")

    monkeypatch.setattr(runs, "eval_device", device)                # the name runs.py calls
    net = runs._load_net(path)
    assert seen and P.model_device(net) == torch.device("cpu") and not net.training
