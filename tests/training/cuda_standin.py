"""A CPU stand-in for the part of ``torch.cuda`` that captures and replays graphs (CUDAGraph,
Stream, stream, current_stream, synchronize), so the packed engine's graph path runs in CI.

Like a real CUDA graph, :class:`StandIn`'s graph

- records, during capture, every aten operation the Python step dispatches (through a
  ``TorchDispatchMode``), with its arguments as they were: tensors by reference, every Python
  scalar (the lr among them) frozen at its capture-time value;
- leaves no trace of the capture itself: the operations run to give the step its tensors, then
  every tensor that existed before the capture and was written, and every generator, get their
  pre-capture values back (a real capture launches nothing);
- replays by running the recorded operations again on the same tensors, never the Python step:
  an operation's fresh result is copied into the tensor the capture produced, which later
  operations (and the gradients backward left in ``param.grad``) read;
- refuses host synchronisation (``.item()``, ``nonzero``, ``equal``, ``is_nonzero``, cross-device
  copies) and random draws from generators not registered with the graph, as CUDA does;
- after a failed capture raises "capture invalidated" from ``capture_end``, and with
  ``legacy_rng=True`` (torch before 2.13) leaves the registered generators and the default one
  flagged as capturing, so that the next eager random draw from them raises (as the real
  generators do) until a capture succeeds. :meth:`StandIn.guard` is the dispatch mode that
  enforces that outside captures: run the training under it.

``fail_captures``: numbers (0-based, in order of ``capture_begin``) of the captures that fail at
their first operation, as a capture of an operation CUDA cannot capture does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Container, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten
#: operations that make the host wait for the device
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.equal.default,
            aten.is_nonzero.default}
_DEFAULT = "default"


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def host_sync(func: Any, args: tuple, kwargs: dict) -> str | None:
    """Why the aten call ``func(*args, **kwargs)`` synchronises with the host, or None."""
    if func in SYNC_OPS:
        return f"{func} reads a device value on the host"
    if func in (aten._to_copy.default, aten.copy_.default):
        devices = {t.device for t in _tensors((args, kwargs))}
        if kwargs.get("device") is not None:
            devices.add(torch.device(kwargs["device"]))
        if len(devices) > 1:
            return f"{func} copies between devices {sorted(map(str, devices))}"
    return None


def _same_generator(a: Any, b: Any) -> bool:
    """Whether two generator handles are one generator (the dispatcher hands out a new Python
    handle per call, so identity cannot tell; a CPU generator's full state can)."""
    if a is _DEFAULT or b is _DEFAULT:
        return a is b
    return torch.equal(a.get_state(), b.get_state())


def _among(gen: Any, generators: Any) -> bool:
    return any(_same_generator(gen, g) for g in generators)


def _generator_arg(func: Any, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """(whether ``func`` draws random numbers, the generator it draws from or _DEFAULT)."""
    names = [a.name for a in func._schema.arguments]
    if "generator" not in names:
        return False, None
    i = names.index("generator")
    gen = kwargs.get("generator", args[i] if i < len(args) else None)
    return True, _DEFAULT if gen is None else gen


class NoHostSync(TorchDispatchMode):
    """Fails on any host synchronisation (:func:`host_sync`) while active."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        why = host_sync(func, args, kwargs)
        if why:
            raise RuntimeError(f"host synchronisation: {why}")
        return func(*args, **kwargs)


class _Recorder(TorchDispatchMode):
    """Records a capture (see the module doc)."""

    def __init__(self, graph: StandInGraph, fail: bool) -> None:
        super().__init__()
        self.graph, self.fail = graph, fail
        self.created: set[int] = set()                       # storages allocated during capture
        self.saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}   # written pre-existing tensors

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.fail:
            raise RuntimeError(f"emulated: {func} cannot be captured (operation not permitted when stream "
                               "is capturing)")
        why = host_sync(func, args, kwargs)
        if why:
            raise RuntimeError(f"operation not permitted when stream is capturing: {why}")
        random, gen = _generator_arg(func, args, kwargs)
        if random and gen is not _DEFAULT and not _among(gen, self.graph.registered):
            raise RuntimeError("philox_cuda_state for an unexpected CUDA generator used during capture")
        # every tensor from before the capture, at first sight (not only those the schema marks as
        # written: native_batch_norm updates its running statistics unannounced)
        for t in _tensors((args, kwargs)):
            if _storage(t) not in self.created and id(t) not in self.saved:
                self.saved[id(t)] = (t, t.detach().clone())
        out = func(*args, **kwargs)
        for t in _tensors(out):
            if t.untyped_storage().nbytes() and _storage(t) not in {_storage(a) for a in _tensors((args, kwargs))}:
                self.created.add(_storage(t))
        self.graph.ops.append((func, args, kwargs, out))
        return out

    def restore(self) -> None:
        """Pre-capture values back, latest first (a view saved after its base keeps the base's)."""
        with torch.no_grad():
            for t, value in reversed(list(self.saved.values())):
                t.copy_(value)


class StandInGraph:
    """``torch.cuda.CUDAGraph`` of a :class:`StandIn`."""

    standin: StandIn

    def __init__(self) -> None:
        self.ops: list[tuple[Any, tuple, dict, Any]] = []
        self.registered: list[torch.Generator] = []
        self.captured = False
        self._recorder: _Recorder | None = None
        self._states: list[tuple[torch.Generator, torch.Tensor]] = []

    def register_generator_state(self, generator: torch.Generator) -> None:
        self.registered.append(generator)

    def capture_begin(self, *args: Any, **kwargs: Any) -> None:
        s = self.standin
        number, s.captures = s.captures, s.captures + 1
        gens = [*self.registered, torch.default_generator]
        self._states = [(g, g.get_state()) for g in gens]
        s.flagged = [*s.flagged, *self.registered, _DEFAULT]
        s.capturing = True
        self._recorder = _Recorder(self, fail=number in s.fail_captures)
        self._recorder.__enter__()

    def capture_end(self) -> None:
        s, rec = self.standin, self._recorder
        rec.__exit__(None, None, None)
        self._recorder = None
        rec.restore()
        for g, state in self._states:
            g.set_state(state)
        s.capturing = False
        if rec.fail:
            self.ops = []
            if not s.legacy_rng:
                s.unflag([*self.registered, _DEFAULT])
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture "
                               "(cudaErrorStreamCaptureInvalidated)")
        s.unflag([*self.registered, _DEFAULT])
        self.captured = True

    def replay(self) -> None:
        if not self.captured:
            raise RuntimeError("Called replay() on a CUDAGraph object before capturing")
        self.standin.replays += 1
        with torch.no_grad():
            for func, args, kwargs, out in self.ops:
                fresh = func(*args, **kwargs)
                inputs = {_storage(t) for t in _tensors((args, kwargs))}
                for old, new in zip(_tensors(out), _tensors(fresh), strict=True):
                    if _storage(old) not in inputs:          # a result, not a view / in-place input
                        old.copy_(new)

    def reset(self) -> None:
        self.ops, self.captured = [], False


class _Stream:
    def wait_stream(self, other: _Stream) -> None:
        pass


class _Guard(TorchDispatchMode):
    """Outside captures: a random draw from a generator still flagged as capturing raises."""

    def __init__(self, standin: StandIn) -> None:
        super().__init__()
        self.standin = standin

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        random, gen = _generator_arg(func, args, kwargs)
        if random and not self.standin.capturing and _among(gen, self.standin.flagged):
            raise RuntimeError("Offset increment outside graph capture encountered unexpectedly.")
        return func(*args, **kwargs)


class StandIn:
    """The stand-in ``torch.cuda`` module (see the module doc)."""

    def __init__(self, legacy_rng: bool = False, fail_captures: Container[int] = ()) -> None:
        self.legacy_rng, self.fail_captures = legacy_rng, fail_captures
        self.captures = self.replays = 0
        self.capturing = False
        self.flagged: list[Any] = []         # generators (or _DEFAULT) flagged as capturing
        self.CUDAGraph = type("CUDAGraph", (StandInGraph,), {"standin": self})
        self._current = _Stream()

    def unflag(self, generators: list[Any]) -> None:
        self.flagged = [g for g in self.flagged if not any(g is x for x in generators)]

    def Stream(self) -> _Stream:  # noqa: N802 - torch.cuda's name
        return _Stream()

    @contextlib.contextmanager
    def stream(self, s: _Stream) -> Iterator[None]:
        was, self._current = self._current, s
        try:
            yield
        finally:
            self._current = was

    def current_stream(self) -> _Stream:
        return self._current

    def synchronize(self) -> None:
        pass

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run eager work under the flagged-generator check (see the module doc)."""
        with _Guard(self):
            yield


@contextlib.contextmanager
def capturable_on_cpu() -> Iterator[None]:
    """Let ``torch.optim.NAdam(capturable=True)`` take CPU tensors (torch allows CUDA-like devices
    only; its capturable arithmetic is device-independent)."""
    import torch.optim.nadam as nadam

    original = nadam._get_capturable_supported_devices
    nadam._get_capturable_supported_devices = lambda supports_xla=True: [*original(supports_xla), "cpu"]
    try:
        yield
    finally:
        nadam._get_capturable_supported_devices = original
