"""Models. Import from the module that owns a name: ``sen2lcz`` (``Sen2LCZ``,
``fuse_for_inference``), ``keras_import`` (``from_keras``: the published Keras weights), ``io``
(``load_model`` / ``save_model``: lczldl model files and Lightning checkpoints).
"""
