"""Patient and cohort HTML reports and the trend chart (see docs/reports.md).

``pipeline.report.charts``: matplotlib trend chart (SVG for the page, PNG for emails).
``pipeline.report.render``: jinja2 pages, :class:`~pipeline.report.render.CohortRow`,
atomic :func:`~pipeline.report.render.write_html`. Submodules are imported explicitly so
that importing the package does not load matplotlib.
"""
