"""Saving and loading models: lczldl weights files and Lightning run checkpoints. Loading never
runs code from the file.

- An lczldl weights file (:mod:`lczldl.models.weights_file`, safetensors) holds tensors and a JSON
  record; :func:`save_model` writes one.
- A Lightning checkpoint of a run keeps the network as ``self.model`` (state-dict keys ``model.*``)
  and its constructor kwargs as the hyper-parameter ``model_kwargs``. It is a pickle, read with
  ``torch.load(weights_only=True)``: only tensors, containers and plain values, which is all the
  checkpoints this project writes hold (solo and packed runs; tests/models/test_safe_loading.py).
  Model files of lczldl before 0.2 (``torch.save({"format": "lczldl-model", ...})``) read the same
  way.
- A pickle that needs more (any other global: a class, a function) is refused in one line, since
  unpickling it could run code; ``trust=True`` (``--trust-checkpoint``) loads it fully, for files the
  user vouches for.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lczldl.errors import ModelError
from lczldl.models.sen2lcz import Sen2LCZ
from lczldl.models.weights_file import (
    is_weights_file,
    read_weights_file,
    read_weights_meta,
    write_weights_file,
)

#: format tag of the pickled model files of earlier lczldl versions (still read)
LEGACY_FORMAT = "lczldl-model"
LEGACY_VERSION = 1


def save_model(model: Sen2LCZ, path: str | Path, meta: dict | None = None) -> Path:
    """Atomically write an lczldl weights file (safetensors; :mod:`lczldl.models.weights_file`).

    ``meta`` is merged over the model's own ``meta`` attribute (e.g. the Keras source file set by
    :func:`lczldl.models.keras_import.from_keras`); the record's defaults fill the rest (classes, bands, scaling,
    versions).
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_weights_file(path, state, dict(model.model_kwargs),
                              {**dict(getattr(model, "meta", None) or {}), **(meta or {})})


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; pass a weights file (.safetensors) or a run checkpoint (.ckpt)")


def _unsafe_reason(path: Path, exc: BaseException) -> str:
    """What a weights-only load refused in ``path`` (the first global it would have to import)."""
    found: list[str] = []
    try:
        found = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint: read the unpickler's message instead
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc))
    return f"it imports {found[0]}" if found else "it holds more than tensors and plain values"


def load_checkpoint_dict(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """The dict in a pickled checkpoint (Lightning's, or an older lczldl model file), loaded with
    ``torch.load(weights_only=True)``: no code from the file runs. A file that needs full
    unpickling is a ModelError (one line, naming ``trust_checkpoint``) unless ``trust`` is True."""
    path = Path(path)
    _check_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "Detected pickle protocol ..." of foreign pickles
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            raise ModelError(f"{path}: loading it would need full unpickling ({_unsafe_reason(path, exc)}), "
                             "which can run code from the file; pass trust_checkpoint=True only if you "
                             "trust where it came from", params=("trust_checkpoint",)) from None
        obj = _load_trusted(path)
    except Exception as exc:  # noqa: BLE001 - any other failure is a bad file for the user
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {msg}); "
                         "pass an lczldl weights file or a run's .ckpt") from None
    if not isinstance(obj, Mapping) or "state_dict" not in obj:
        raise ModelError(f"{path}: not an lczldl weights file or Lightning checkpoint (no state_dict)")
    return dict(obj)


def _load_trusted(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {msg})") from None


def _kwargs_and_state(path: Path, trust: bool) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """(model_kwargs, Sen2LCZ state dict, record) of any model file this module reads."""
    if is_weights_file(path):
        state, record = read_weights_file(path)
        return record["model_kwargs"], state, record
    obj = load_checkpoint_dict(path, trust)
    if obj.get("format") == LEGACY_FORMAT:
        if int(obj.get("version", 0)) > LEGACY_VERSION:
            raise ModelError(f"{path}: model file version {obj.get('version')} is newer than this "
                             f"lczldl reads ({LEGACY_VERSION}); upgrade lczldl")
        meta = obj.get("meta")
        return obj.get("model_kwargs"), obj["state_dict"], dict(meta) if isinstance(meta, Mapping) else {}
    hp = obj.get("hyper_parameters") or {}
    kwargs = hp.get("model_kwargs") if isinstance(hp, Mapping) else None
    if kwargs is None:
        raise ModelError(f"{path}: Lightning checkpoint without the 'model_kwargs' hyper-parameter; "
                         "save the module's hyper-parameters with model_kwargs")
    state = {k[len("model."):]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
    if not state:
        raise ModelError(f"{path}: Lightning checkpoint has no 'model.*' weights")
    return kwargs, state, {}


def read_model_meta(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """The record of a model file: a weights file's header (no tensors read), an older model file's
    ``meta``; {} for a Lightning checkpoint. Same refusals as :func:`load_model`."""
    path = Path(path)
    _check_path(path)
    if is_weights_file(path):
        return read_weights_meta(path)
    return _kwargs_and_state(path, trust)[2]


def load_model(path: str | Path, trust: bool = False) -> Sen2LCZ:
    """Load an lczldl weights file, a Lightning checkpoint of a run, or an older lczldl model file.

    Returns the :class:`Sen2LCZ` in eval mode on CPU, its ``meta`` attribute the file's record ({}
    for a Lightning checkpoint). Raises ModelError (one line) on a missing, unreadable or
    mismatching file, and on a pickle that needs full unpickling unless ``trust``
    (:func:`load_checkpoint_dict`).
    """
    path = Path(path)
    _check_path(path)
    kwargs, state, record = _kwargs_and_state(path, trust)
    if not isinstance(kwargs, Mapping):
        raise ModelError(f"{path}: model_kwargs is {type(kwargs).__name__}, expected a dict")
    kwargs = dict(kwargs)
    try:
        model = Sen2LCZ(**kwargs)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not fit Sen2LCZ({kwargs}): {str(exc).splitlines()[0]}") from None
    model.meta = dict(record)
    return model.eval()
