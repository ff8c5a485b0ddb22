"""Owns the lczldl weights file: one safetensors file holding a Sen2LCZ-Net's tensors and, in the
safetensors header's string metadata, everything needed to use it (docs/weights.md).

Header metadata (string -> string, as safetensors requires):
``format`` = ``lczldl-weights``, ``version`` = ``1``, and one key per record field, each holding
the field's JSON text: ``model_kwargs`` (Sen2LCZ constructor arguments), ``classes`` (LCZ id of each
class index), ``bands`` (input bands in order), ``scaling`` (how pixels become the input),
``regime``, ``temperature``, ``conformal``, ``store``, ``source``, ``citation``, ``licence``,
versions and more (:func:`record_fields`). Reading never unpickles: safetensors is a JSON header
and raw tensor bytes, so a weights file cannot run code when it is loaded.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from lczldl import __version__
from lczldl.constants import BANDS, REFLECTANCE_SCALE
from lczldl.errors import ModelError
from lczldl.fileio import atomic_path, json_safe

FORMAT = "lczldl-weights"
VERSION = 1
#: how pixels become the network's input, for every model of this project (So2Sat's convention)
SCALING: dict[str, Any] = {"input": "reflectance", "reflectance": "(DN + offset) / quantification",
                           "dn_divisor": REFLECTANCE_SCALE, "normalisation": "none"}
#: the safetensors header may not exceed this many bytes (the format's own limit is 100 MB)
_MAX_HEADER = 100_000_000


def is_weights_file(path: str | Path) -> bool:
    """True when ``path`` starts like a safetensors file (8-byte little-endian header length, then a
    JSON object that fits the file). Reads 9 bytes; never raises for a readable file."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = Path(path).stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n <= min(_MAX_HEADER, size - 8)


def default_classes(num_classes: int) -> list[int]:
    """LCZ ids of a model's K class indices by the project's convention (index i <-> LCZ i + 1)."""
    return list(range(1, int(num_classes) + 1))


def record_fields(model_kwargs: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The record written into a weights file: ``meta`` over the defaults (classes 1..K, the So2Sat
    bands when the model takes 10 of them, :data:`SCALING`), then the versions that write it."""
    k, c = int(model_kwargs["num_classes"]), int(model_kwargs.get("in_channels", len(BANDS)))
    base: dict[str, Any] = {"classes": default_classes(k), "bands": list(BANDS) if c == len(BANDS) else None,
                            "scaling": dict(SCALING)}
    return {**base, **meta, "lczldl_version": __version__, "torch_version": torch.__version__,
            "model_kwargs": dict(model_kwargs)}


def write_weights_file(path: str | Path, state: dict[str, torch.Tensor], model_kwargs: dict[str, Any],
                       meta: dict[str, Any]) -> Path:
    """Atomically write ``state`` (tensor name -> tensor) with the record of :func:`record_fields`."""
    from safetensors.torch import save_file

    path = Path(path)
    record = json_safe(record_fields(model_kwargs, meta))
    header = {"format": FORMAT, "version": str(VERSION),
              **{k: json.dumps(v, allow_nan=False) for k, v in record.items() if k not in ("format", "version")}}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]}); "
                         "export it again (lczldl export-weights)") from None
    if header.get("format") != FORMAT:
        raise ModelError(f"{path}: a safetensors file without the '{FORMAT}' record (format "
                         f"{header.get('format')!r}); write it with lczldl export-weights or import-keras")
    return header


def read_weights_meta(path: str | Path) -> dict[str, Any]:
    """The record of a weights file (every field but ``format``/``version``, JSON-decoded), read from
    the header only. ModelError (one line) for another file or a newer version."""
    path = Path(path)
    header = _header(path)
    try:
        version = int(header.get("version", "0"))
    except ValueError:
        version = -1
    if not 1 <= version <= VERSION:
        raise ModelError(f"{path}: weights file version {header.get('version')!r}; this lczldl reads "
                         f"version {VERSION} (upgrade lczldl for a newer one)")
    try:
        record = {k: json.loads(v) for k, v in header.items() if k not in ("format", "version")}
    except ValueError as exc:
        raise ModelError(f"{path}: a record field is not JSON ({exc}); export the file again") from None
    if not isinstance(record.get("model_kwargs"), dict):
        raise ModelError(f"{path}: weights file without model_kwargs; export it again")
    return record


def read_weights_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, record) of a weights file; only tensors and JSON are read."""
    from safetensors.torch import load_file

    path = Path(path)
    record = read_weights_meta(path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: cannot read the tensors ({str(exc).splitlines()[0]}); the file is "
                         "damaged, export it again") from None
    return state, record
