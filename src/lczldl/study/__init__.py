"""The study: the grid of regimes x seeds as a resumable DAG of units, run locally or on SLURM.

``runner.run_study`` (entry point: settings, checks, DAG) -> ``folder`` (store, lock, study.json)
-> ``scheduler`` (the loop) on an ``executors`` executor (``forkserver`` for local units) ->
``worker`` (a unit's process) -> ``work`` (each unit kind's real work);
``units`` (DAG, markers), ``progress`` (console), ``demo`` (``lczldl demo`` and its profiles).
"""
