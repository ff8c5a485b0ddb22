"""Summary tables over runs: mean +- std per regime x method, paired differences with bootstrap
intervals; atomic JSON / text writers (NaN written as JSON null)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _clean(obj: Any) -> Any:
    """Recursively replace NaN / inf floats with None and numpy scalars with Python ones."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_json(obj: Any) -> str:
    """Strict JSON text (NaN / inf -> null), indented, keys in insertion order."""
    return json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n"


def write_text_atomic(path: Path, text: str) -> Path:
    """Write text to a temp name in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json_atomic(path: Path, obj: Any) -> Path:
    """Atomic strict-JSON write (NaN as null)."""
    return write_text_atomic(path, dumps_json(obj))
