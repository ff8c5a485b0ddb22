"""Typed exceptions. Every user-facing failure is a subclass of :class:`LczldlError`.

The CLI turns any ``LczldlError`` into one line on stderr and exit code 2 (no traceback).
Messages should say what went wrong, where (file, key, run) and how to fix it.

Library code names what the caller passed by its own name, never by a CLI flag: a parameter or
config key as ``name`` or ``name=value`` (``scale must be a positive number``, ``e.g.
scale=10000``), and lists the names in ``params``; the CLI, and only it, writes them as its flags
(``--scale``).
"""

from __future__ import annotations

from collections.abc import Sequence


class LczldlError(Exception):
    """Base class of all errors meant for the user.

    ``params``: the parameters (function arguments or config keys) the message names, as ``name``
    or ``name=value`` (see the module docstring)."""

    def __init__(self, *args: object, params: Sequence[str] = ()) -> None:
        super().__init__(*args)
        self.params: tuple[str, ...] = tuple(params)


class DataError(LczldlError):
    """A data file is missing, malformed or inconsistent."""


class ConfigError(LczldlError):
    """A configuration key is unknown, of the wrong type or has an impossible value."""


class RunError(LczldlError):
    """A training / evaluation run is missing files or is in an unusable state."""


class ModelError(LczldlError):
    """A checkpoint or weight file cannot be read or does not fit the model."""


class SceneError(LczldlError):
    """A scene (GeoTIFF) given for mapping is unusable."""
