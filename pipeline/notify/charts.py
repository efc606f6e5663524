"""Inline trend chart of an alert email, drawn by the report's own chart code.

The chart is optional decoration of the HTML part: the report is authoritative. So a chart
that cannot be drawn never blocks a clinical alert; :func:`pipeline.notify.outbox.deliver_pending`
then sends the message without it and records a warning.

Delivery takes any :data:`ChartProvider` (``patient_id -> PNG bytes or None``) and calls it
once per digest, i.e. once per patient and run. Issue #11 item 3 wants one render per
patient per run *shared with the report*: :func:`report_chart_provider` reads the PNG the
report step drew into ``<reports>/.charts`` (``pipeline.report.chartcache``) and draws
only for a patient it has none for (a delivery retried in a later run, a run without the
report step); the flows use it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pandas as pd

#: What delivery needs: the PNG trend chart of a patient, or ``None`` (no chart).
ChartProvider = Callable[[str], bytes | None]


class FrameSource(Protocol):
    """What the provider reads: the store's frames (``pipeline.store.repository.Store``)."""

    def observations_frame(self, patient_ids: list[str] | None = None) -> pd.DataFrame: ...

    def samples_frame(self, patient_ids: list[str] | None = None) -> pd.DataFrame: ...

    def therapies_frame(self, patient_ids: list[str] | None = None) -> pd.DataFrame: ...


def store_chart_provider(store: FrameSource) -> ChartProvider:
    """A ``patient_id -> PNG bytes`` callable for ``deliver_pending(chart_for=...)``.

    Parameters
    ----------
    store
        The longitudinal store (its current sample versions are charted).

    Returns
    -------
    callable
        Renders ``pipeline.report.charts.trend_chart_png`` for one patient (150 dpi PNG);
        returns ``None`` for a patient without draws.
    """
    from pipeline.report.charts import trend_chart_png

    rendered: dict[str, bytes | None] = {}

    def provider(patient_id: str) -> bytes | None:
        # One render per patient per delivery run: a patient with an alert and a status
        # message (or several rules) gets the same chart, drawn once (issue #11 item 3).
        if patient_id not in rendered:
            ids = [patient_id]
            samples = store.samples_frame(ids)
            rendered[patient_id] = None if samples.empty else trend_chart_png(
                store.observations_frame(ids), samples, store.therapies_frame(ids))
        return rendered[patient_id]

    return provider


def report_chart_provider(store: FrameSource, reports_dir: str | Path) -> ChartProvider:
    """The report step's PNG of each patient, drawn again only when it has none.

    Parameters
    ----------
    store
        The longitudinal store (for the fall-back render).
    reports_dir
        The run's report folder; its chart cache holds the PNGs the report step drew this
        run (``ChartCache.for_reports``). A patient whose content changed without a new
        PNG has had its old one discarded by the report step, so no stale chart is sent.

    Returns
    -------
    callable
        ``patient_id -> PNG bytes or None``; ``.drawn`` lists the patients drawn by the fall-back.
    """
    from pipeline.report.chartcache import ChartCache

    cache = ChartCache.for_reports(reports_dir)
    fallback = store_chart_provider(store)
    drawn: list[str] = []

    def provider(patient_id: str) -> bytes | None:
        png = cache.png(patient_id)
        if png is not None:
            return png
        if patient_id not in drawn:
            drawn.append(patient_id)  # the fall-back memoises: one render per patient
        return fallback(patient_id)

    provider.drawn = drawn  # type: ignore[attr-defined]
    return provider
