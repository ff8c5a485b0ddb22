"""Saving and loading models: lczldl model files and Lightning run checkpoints.

An lczldl model file is ``torch.save({"format": "lczldl-model", "version": 1, "model_kwargs": {...},
"state_dict": {...}, "meta": {...}})``. A Lightning checkpoint of a run keeps the network as
``self.model`` (state-dict keys ``model.*``) and its constructor kwargs as the hyper-parameter
``model_kwargs``. Both are pickles: load only files you trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lczldl import __version__
from lczldl.errors import ModelError
from lczldl.fileio import atomic_path
from lczldl.models.sen2lcz import Sen2LCZ

FORMAT = "lczldl-model"
VERSION = 1


def save_model(model: Sen2LCZ, path: str | Path, meta: dict | None = None) -> Path:
    """Atomically write an lczldl model file (:func:`lczldl.fileio.atomic_path`).

    ``meta`` is merged over the model's own ``meta`` attribute (e.g. the Keras source file set by
    :func:`lczldl.models.keras_import.from_keras`) and the package / torch versions.
    """
    path = Path(path)
    info = {"lczldl_version": __version__, "torch_version": torch.__version__,
            **dict(getattr(model, "meta", None) or {}), **(meta or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, "model_kwargs": dict(model.model_kwargs),
                    "state_dict": state, "meta": info}, tmp)
    return path


def read_model_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta`` dict of an lczldl model file ({} for a Lightning checkpoint)."""
    obj = _load(Path(path))
    return dict(obj.get("meta") or {}) if obj.get("format") == FORMAT else {}


def _load(path: Path) -> dict:
    if not path.exists():
        raise ModelError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; pass a model file (.pt) or a checkpoint (.ckpt)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {msg}); "
                         "pass an lczldl model file or a run's .ckpt") from None
    if not isinstance(obj, Mapping) or "state_dict" not in obj:
        raise ModelError(f"{path}: not an lczldl model file or Lightning checkpoint (no state_dict)")
    return dict(obj)


def load_model(path: str | Path) -> Sen2LCZ:
    """Load an lczldl model file or a Lightning checkpoint of a run.

    Returns the :class:`Sen2LCZ` in eval mode on CPU. Raises ModelError (one line) on a missing,
    unreadable or mismatching file.
    """
    path = Path(path)
    obj = _load(path)
    if obj.get("format") == FORMAT:
        if int(obj.get("version", 0)) > VERSION:
            raise ModelError(f"{path}: model file version {obj.get('version')} is newer than this "
                             f"lczldl reads ({VERSION}); upgrade lczldl")
        kwargs, state = obj.get("model_kwargs"), obj["state_dict"]
    else:
        hp = obj.get("hyper_parameters") or {}
        kwargs = hp.get("model_kwargs") if isinstance(hp, Mapping) else None
        if kwargs is None:
            raise ModelError(f"{path}: Lightning checkpoint without the 'model_kwargs' hyper-parameter; "
                             "save the module's hyper-parameters with model_kwargs")
        state = {k[len("model."):]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
        if not state:
            raise ModelError(f"{path}: Lightning checkpoint has no 'model.*' weights")
    if not isinstance(kwargs, Mapping):
        raise ModelError(f"{path}: model_kwargs is {type(kwargs).__name__}, expected a dict")
    kwargs = dict(kwargs)
    try:
        model = Sen2LCZ(**kwargs)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not fit Sen2LCZ({kwargs}): {str(exc).splitlines()[0]}") from None
    return model.eval()
