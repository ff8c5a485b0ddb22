"""LCZ maps with uncertainty from Sentinel-2 scenes (``lczldl predict``). Import from the module
that owns a name: ``scene`` (``open_scene``), ``safe``, ``radiometry``, ``aoi``, ``grid``,
``predict`` (``predict_scene``), ``outputs``, ``report``, ``preview``."""
