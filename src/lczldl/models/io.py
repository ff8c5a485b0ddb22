"""Saving and loading models: lczldl model files and Lightning run checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lczldl.errors import ModelError
from lczldl.models.sen2lcz import Sen2LCZ

FORMAT = "lczldl-model"


def save_model(model: Sen2LCZ, path: str | Path, meta: dict | None = None) -> Path:
    """Atomically write ``{"format", "version", "model_kwargs", "state_dict", "meta"}`` with torch.save."""
    from lczldl import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, "version": 1, "model_kwargs": dict(model.model_kwargs),
                "state_dict": model.state_dict(),
                "meta": {"lczldl_version": __version__, "torch_version": torch.__version__, **(meta or {})}},
               tmp)
    os.replace(tmp, path)
    return path


def load_model(path: str | Path) -> Sen2LCZ:
    """Load an lczldl model file or a Lightning checkpoint of a run (module keeps ``self.model``).

    Returns the model in eval mode on CPU.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise ModelError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise ModelError(f"{path}: not an lczldl model file or Lightning checkpoint (no state_dict)")
    if obj.get("format") == FORMAT:
        kwargs, state = obj["model_kwargs"], obj["state_dict"]
    else:
        hp = obj.get("hyper_parameters") or {}
        kwargs = hp.get("model_kwargs")
        if kwargs is None:
            raise ModelError(f"{path}: Lightning checkpoint without model_kwargs hyper-parameter")
        state = {k[len("model."):]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
    try:
        model = Sen2LCZ(**kwargs)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not fit Sen2LCZ({kwargs}): {str(exc).splitlines()[0]}") from None
    return model.eval()
