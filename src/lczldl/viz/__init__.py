"""Figures (PNG + PDF) and the study report (HTML + Markdown), drawn from saved files only.

:mod:`lczldl.viz.figures` holds pure plotting functions (arrays in, files out),
:mod:`lczldl.viz.report` reads a study folder and writes ``figures/``, ``report.html`` and
``report.md``; :mod:`lczldl.viz.style` is the shared look.
"""
