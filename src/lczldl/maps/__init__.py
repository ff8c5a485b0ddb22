"""LCZ maps with uncertainty from Sentinel-2 scenes (`lczldl predict`)."""
