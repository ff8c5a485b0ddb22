"""Owns what a model's classes mean for its user: the LCZ id of each class index (a weights file's
``classes``, else index i <-> LCZ i + 1) and the one-line note that a model naming only some LCZ
(the authors' 10 urban classes) assigns every image one of those (maps, evaluation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lczldl.constants import LCZ_CODES, N_LCZ
from lczldl.models.weights_file import default_classes


def model_classes(model: Any) -> list[int]:
    """LCZ ids of ``model``'s class indices: its ``meta["classes"]`` (weights files), else 1..K."""
    classes = (getattr(model, "meta", None) or {}).get("classes")
    if classes:
        return [int(c) for c in classes]
    return default_classes(int(model.model_kwargs["num_classes"]))


def lcz_codes(ids: Sequence[int]) -> str:
    """LCZ ids as their codes with runs joined: [1..10] -> "1-10", [11..17] -> "A-G", [1, 3] -> "1, 3"."""
    ids = sorted(int(i) for i in ids)
    parts: list[str] = []
    start = prev = None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1 or (prev == 10 and i == 11)):
            a, b = LCZ_CODES[start - 1], LCZ_CODES[prev - 1]
            parts.append(a if start == prev else f"{a}-{b}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def scope_note(classes: Sequence[int]) -> str | None:
    """One line saying which LCZ a model can name, or None when it names all 17."""
    classes = sorted(int(c) for c in classes)
    if classes == default_classes(N_LCZ):
        return None
    missing = [c for c in default_classes(N_LCZ) if c not in classes]
    return (f"{len(classes)}-class model (LCZ {lcz_codes(classes)}): every window is assigned one of "
            f"LCZ {lcz_codes(classes)}; LCZ {lcz_codes(missing)} are never predicted")
