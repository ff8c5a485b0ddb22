"""Sen2LCZ-Net and loaders for the published Keras weights and lczldl checkpoints."""

from lczldl.models.io import load_model, save_model
from lczldl.models.keras_import import from_keras
from lczldl.models.sen2lcz import Sen2LCZ, fuse_for_inference

__all__ = ["Sen2LCZ", "from_keras", "fuse_for_inference", "load_model", "save_model"]
