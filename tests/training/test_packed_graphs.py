"""The packed engine's CUDA-graph path on CPU, through the stand-in of tests/training/cuda_standin.py
(a graph that records the step's aten operations and replays them with their capture-time
scalars, never calling the Python step again):

(a) several epochs with lr changes, a partial last batch and a capture that raises end with
    weights bitwise equal to eager training (the broken variants: no re-capture when the lr
    changes; no generator repair after a failed capture on a pre-2.13 torch);
(b) the captured step never synchronises with the host (broken: non-capturable Nadam, a
    per-step finiteness check);
(c) capturable Nadam state survives member -> checkpoint -> pack -> resume and continues
    identically (broken: mu_product lost on the way);
(d) an uninitialised packed network is refused (broken: the refusal skipped).
Every check is a function returning whether the property holds, run on the engine and on its
broken variant: the test asserts it holds for the one and fails for the other.
"""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from lczldl.data.store import open_store
from lczldl.models.sen2lcz import Sen2LCZ
from lczldl.training import packed_engine
from lczldl.training.losses import kl_divergence, soft_cross_entropy
from lczldl.training.packed import epoch_batches, train_pack
from lczldl.training.packed_engine import PackEngine, load_split
from lczldl.training.packed_model import PackedSen2LCZ, PackingError, member_init_states
from lczldl.training.schedule import epoch_seed, lr_factor

from .conftest import TINY, run_config
from .cuda_standin import NoHostSync, StandIn, capturable_on_cpu

KWARGS = Sen2LCZ(depth=5, width=2, dropout=0.2).model_kwargs
SEEDS = (0, 3)
N_TRAIN, BATCH = 90, 16            # 5 full batches and a last one of 10
EPOCHS, LR_STEP = 3, 2             # lr 0.002, 0.002, 0.001


@pytest.fixture(scope="module")
def splits(tiny_store):
    store = open_store(tiny_store)
    return [load_split(store, s, None, ["distribution", "onehot"], 0.0, torch.device("cpu")) for s in ("train", "val")]


@contextlib.contextmanager
def _one_thread_capturable():
    """One torch thread and Nadam's capturable state allowed on CPU (the stand-in's conditions)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with capturable_on_cpu():
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _capturable():
    with _one_thread_capturable():
        yield


def _engine(splits, standin: StandIn | None, cls: type = PackEngine, capturable: bool = True,
            monkeypatch=None) -> PackEngine:
    if standin is not None:
        monkeypatch.setattr(packed_engine, "graph_api", lambda device: standin)
    net = PackedSen2LCZ(KWARGS, len(SEEDS))
    net.load_members(member_init_states(KWARGS, SEEDS))
    net.set_generators([torch.Generator() for _ in SEEDS])
    train, val = splits
    return cls(net, [kl_divergence, soft_cross_entropy], ["distribution", "onehot"], ["distribution", "onehot"],
               train, val, lr=0.002, optimizer={"eps": 1e-7, "momentum_decay": 4e-3},
               graphs=standin is not None, capturable=capturable, val_batch_size=64)


def _train(engine: PackEngine) -> dict[str, torch.Tensor]:
    """EPOCHS epochs as the pack runs them; the network's and Nadam's state afterwards."""
    gens = engine.net.net.drop2.generators
    for epoch in range(EPOCHS):
        for seed, g in zip(SEEDS, gens, strict=True):
            g.manual_seed(epoch_seed(seed, epoch))
        full, last = epoch_batches(SEEDS, N_TRAIN, BATCH, epoch)
        assert last is not None and last.shape == (2, N_TRAIN % BATCH)
        engine.train_epoch(full, last, 0.002 * lr_factor(epoch, 0.5, LR_STEP))
        assert engine.epoch_losses(N_TRAIN).shape == (2,)
    state = {k: v.clone() for k, v in engine.net.state_dict().items()}
    for i, entry in engine.opt.state_dict()["state"].items():
        state.update({f"opt.{i}.{name}": v.clone() for name, v in entry.items()})
    return state


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def eager(splits):
    """The reference: the same training, eager (capturable Nadam, as the graphed engine's)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with capturable_on_cpu():
        state = _train(_engine(splits, None))
    torch.set_num_threads(threads)
    return state


# ------------------------------------------------------------------ (a) replay equals eager
class NoRecapture(PackEngine):
    """Broken: replays the graph captured at the first lr after the lr changed."""

    def _can_replay(self, lr: float) -> bool:
        return self._graph is not None


class NoRepair(PackEngine):
    """Broken: after a failed capture, leaves the generators as the capture left them."""

    def _drop_failed_capture(self, generators, states) -> None:
        self.release_graph()
        self.opt.zero_grad(set_to_none=True)


def _graphed_equals_eager(splits, eager, monkeypatch, cls=PackEngine, **standin) -> tuple[bool, StandIn, list]:
    s = StandIn(**standin)
    engine = _engine(splits, s, cls, monkeypatch=monkeypatch)
    with warnings.catch_warnings(record=True) as caught, s.guard():
        warnings.simplefilter("always")
        state = _train(engine)
    return _equal(state, eager), s, [str(w.message) for w in caught]


def test_graph_replays_equal_eager_training_across_lr_changes(splits, eager, monkeypatch):
    same, s, warned = _graphed_equals_eager(splits, eager, monkeypatch)
    assert same and not warned
    assert s.captures == 2                       # one per lr
    steps = EPOCHS * (N_TRAIN // BATCH)
    assert s.replays == steps - packed_engine.WARMUP_STEPS


def test_broken_variant_without_recapture_per_lr_differs(splits, eager, monkeypatch):
    same, s, _ = _graphed_equals_eager(splits, eager, monkeypatch, NoRecapture)
    assert s.captures == 1 and not same


@pytest.mark.parametrize("legacy_rng", [True, False], ids=["torch<2.13", "torch>=2.13"])
@pytest.mark.parametrize("fail", [0, 1], ids=["first capture fails", "re-capture fails"])
def test_failed_capture_reports_its_cause_and_trains_eagerly_to_the_same_weights(splits, eager, monkeypatch,
                                                                                 legacy_rng, fail):
    same, s, warned = _graphed_equals_eager(splits, eager, monkeypatch, legacy_rng=legacy_rng,
                                            fail_captures={fail})
    assert same
    (msg,) = warned
    assert "CUDA graph capture failed (RuntimeError: emulated: " in msg and "invalidated" not in msg
    assert s.captures == fail + 2                # the failing one and the generators' repair
    assert not s.flagged


def test_broken_variant_without_generator_repair_fails_on_old_torch(splits, eager, monkeypatch):
    with pytest.raises(RuntimeError, match="Offset increment outside graph capture"):
        _graphed_equals_eager(splits, eager, monkeypatch, NoRepair, legacy_rng=True, fail_captures={0})
    # on torch >= 2.13 the capture's failure clears the flags itself: the variant trains
    assert _graphed_equals_eager(splits, eager, monkeypatch, NoRepair, legacy_rng=False, fail_captures={0})[0]


# ------------------------------------------------------------------ (b) no host sync in the step
class CheckedStep(PackEngine):
    """Broken: checks every step's losses on the host."""

    def _step(self, idx):
        super()._step(idx)
        if not torch.isfinite(self.loss_sum).all():
            raise FloatingPointError("non-finite loss")


def _step_without_host_sync(splits, cls=PackEngine, capturable=True) -> bool:
    engine = _engine(splits, None, cls, capturable=capturable)
    full, _ = epoch_batches(SEEDS, N_TRAIN, BATCH, 0)
    engine._eager_step(full[0])                          # optimizer state exists, as at capture
    engine.opt.zero_grad(set_to_none=True)
    try:
        with NoHostSync():
            engine._step(full[1])
    except RuntimeError as exc:
        assert "host synchronisation" in str(exc)
        return False
    return True


def test_captured_step_never_waits_for_the_host(splits):
    assert _step_without_host_sync(splits)
    assert not _step_without_host_sync(splits, capturable=False)     # Nadam's step counter read on the host
    assert not _step_without_host_sync(splits, CheckedStep)


# ------------------------------------------------------------------ (c) capturable state across resume
SETTINGS = TINY + ["train.lr_step_epochs=2"]
MEMBERS = [("onehot", 0), ("dist", 1)]


class _Stop(Exception):
    pass


def _last(results) -> dict:
    """Each member's last checkpoint (epoch 3): state_dict and optimizer state, keyed by regime."""
    out = {}
    for r in results:
        ck = torch.load(r.run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
        assert ck["epoch"] == 3
        out.update({f"{r.regime}.{k}": v for k, v in ck["state_dict"].items()})
        for i, entry in ck["optimizer_states"][0]["state"].items():
            assert entry["step"].device.type == "cpu" and entry["step"].dtype == torch.float32
            out.update({f"{r.regime}.opt.{i}.{n}": v for n, v in entry.items()})
    return out


@pytest.fixture(scope="module")
def uninterrupted(tiny_store, tmp_path_factory) -> dict:
    """:func:`_last` of an uninterrupted 4-epoch pack graphed through the stand-in (what a resumed
    pack must equal; the variants below change only what resuming does)."""
    s = StandIn()
    with pytest.MonkeyPatch.context() as mp, _one_thread_capturable():   # (module scope: no autouse)
        mp.setattr(packed_engine, "graph_api", lambda device: s)
        ref = train_pack(tiny_store, MEMBERS, tmp_path_factory.mktemp("ref"), run_config(SETTINGS, max_epochs=4))
    assert s.replays > 0 and [r.status for r in ref] == ["finished"] * 2
    return _last(ref)


def _resumed(tiny_store, tmp_path, monkeypatch) -> dict:
    """:func:`_last` of a pack graphed through the stand-in that dies after committing epoch 1 and
    resumes to 4 epochs."""
    s = StandIn()
    monkeypatch.setattr(packed_engine, "graph_api", lambda device: s)
    out = tmp_path / "resumed"

    def stop(epoch, results):
        if epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):                  # the pack dies after committing epoch 1
        train_pack(tiny_store, MEMBERS, out, run_config(SETTINGS, max_epochs=4), on_epoch=stop)
    res = train_pack(tiny_store, MEMBERS, out, run_config(SETTINGS, max_epochs=4), resume=True)
    assert s.replays > 0 and [r.status for r in res] == ["finished"] * 2
    return _last(res)


@pytest.mark.slow
def test_capturable_state_survives_checkpoint_and_resume(tiny_store, tmp_path, monkeypatch, uninterrupted):
    assert _equal(uninterrupted, _resumed(tiny_store, tmp_path, monkeypatch))


@pytest.mark.slow
def test_broken_variant_losing_mu_product_on_resume_differs(tiny_store, tmp_path, monkeypatch, uninterrupted):
    load = PackEngine.load_optimizer_state

    def lossy(self, state):
        load(self, state)
        for entry in self.opt.state.values():
            entry["mu_product"].fill_(1.0)

    monkeypatch.setattr(PackEngine, "load_optimizer_state", lossy)
    assert not _equal(uninterrupted, _resumed(tiny_store, tmp_path, monkeypatch))


# ------------------------------------------------------------------ (d) uninitialised network
class Unguarded(PackedSen2LCZ):
    """Broken: computes without member weights."""

    def require_loaded(self) -> None:
        pass


def _refuses_uninitialised(cls: type, splits) -> bool:
    """Whether a packed network of ``cls`` without member weights refuses to compute and to train."""
    net = cls(KWARGS, 2)
    net.set_generators([torch.Generator() for _ in range(2)])
    attempts = (lambda: net(torch.zeros(4, 20, 32, 32)),
                lambda: PackEngine(net, [kl_divergence] * 2, ["distribution"] * 2, ["distribution"] * 2, *splits,
                                   lr=0.002, optimizer={"eps": 1e-7, "momentum_decay": 4e-3}))
    for attempt in attempts:
        try:
            attempt()
        except PackingError as exc:
            assert "load_members" in str(exc)
        else:
            return False
    return True


def test_uninitialised_packed_network_is_refused(splits):
    assert _refuses_uninitialised(PackedSen2LCZ, splits)
    assert not _refuses_uninitialised(Unguarded, splits)
    net = PackedSen2LCZ(KWARGS, 2)
    net.load_members(member_init_states(KWARGS, (5, 6)))
    net.eval()
    out = net(torch.rand(4, 20, 32, 32))
    assert out.shape == (2, 4, 10) and torch.isfinite(out).all()
    # member_init_states is a Sen2LCZ built after seeding, the global RNG untouched
    before = torch.get_rng_state()
    (state,) = member_init_states(KWARGS, (5,))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    assert all(torch.equal(v, state[k]) for k, v in Sen2LCZ(**KWARGS).state_dict().items())
