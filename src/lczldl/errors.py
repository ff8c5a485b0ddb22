"""Typed exceptions. Every user-facing failure is a subclass of :class:`LczldlError`.

The CLI turns any ``LczldlError`` into one line on stderr and exit code 2 (no traceback).
Messages should say what went wrong, where (file, key, run) and how to fix it.
"""

from __future__ import annotations


class LczldlError(Exception):
    """Base class of all errors meant for the user."""


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
