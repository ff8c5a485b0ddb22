"""lcz-ldl: learn Local Climate Zone classifiers from human label uncertainty."""

__version__ = "0.1.0"
