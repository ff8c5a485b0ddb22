"""Data: raw vote files -> the prepared store. Import from the module that owns a name:
``readers`` (one reader per source format), ``labels`` (votes -> counts, majority, distributions),
``vote_budget``, ``dawid_skene``, ``aggregation`` (crowd-kit), ``splits``, ``prepare``
(``prepare_store``, ``is_raw_vote_folder``) with ``prepare_plan``, ``prepare_pixels`` and
``prepare_manifest``, ``store`` (``open_store``, ``is_prepared_store``, ``make_targets``: the one
reader of a store), ``stats``, ``synth`` / ``synth_pixels`` (the twin), ``datamodule`` (Lightning).
"""
