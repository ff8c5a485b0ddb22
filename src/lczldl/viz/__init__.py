"""Figures (PNG + PDF) and the study report (HTML + Markdown), drawn from saved files only.

:mod:`lczldl.viz.figures` holds the figure functions by family (data function, ``draw_*`` ->
Figure, ``plot_*`` -> files), :mod:`lczldl.viz.reader` reads a study folder, :mod:`lczldl.viz.render`
lays out HTML + Markdown, :mod:`lczldl.viz.report` decides which figures and tables come from which
files and writes ``figures/``, ``report.html`` and ``report.md`` (sections from
:mod:`lczldl.viz.beyond_section` and :mod:`lczldl.viz.beyond`, cells from :mod:`lczldl.viz.tables`);
:mod:`lczldl.viz.style` is the shared look. Import from the module that owns a name.
"""
