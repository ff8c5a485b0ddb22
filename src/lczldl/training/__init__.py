"""Training: a prepared store -> run folders. Import from the module that owns a name: ``run``
(``train_run``), ``members``, ``rundir``, ``callbacks``, ``module`` (the LightningModule),
``losses``, ``schedule``, ``packed`` / ``packed_model`` / ``packed_engine`` / ``packed_ckpt`` (K runs
as one grouped network), ``fastpath`` (which engine a run takes).
"""
