"""Readers, one module per source format: ``votes`` (label-evaluation release), ``seed_splits``
(the seed code's training/validation/testing.h5) and ``so2sat`` (original So2Sat LCZ42 v2/v3)."""
