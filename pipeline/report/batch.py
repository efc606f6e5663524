"""Write many patients' reports in one pass, rewriting only those whose content changed.

Issue #11 item 3: a run used to re-render every evaluated patient's report (about 0.4 s of
matplotlib each). Here each report has a content fingerprint: the chart fingerprint (the
patient's observations, draws, lines of therapy, the assessment, the drawing code) plus the
alert history, the configuration and knowledge-base versions, the knowledge-base sources, the
pipeline version and the page templates. The fingerprints of the files written are kept in a
small manifest in the report folder (``.reports-manifest/``, one file per report); a report
whose fingerprint matches and whose file is still there is left untouched (not re-drawn,
not re-written).

The frames are read once for the whole batch by the caller (``pipeline.service``) and split
per patient with one ``groupby``; the per-patient work left is the drawing and templating.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import pipeline
from pipeline.assessment import Assessment
from pipeline.config import Settings
from pipeline.progress import tracked
from pipeline.report.chartcache import ChartCache, chart_code_version, frame_digests
from pipeline.report.render import render_patient_report, write_html

__all__ = [
    "MANIFEST_NAME", "ReportManifest", "ReportsOutcome", "content_digest", "write_patient_reports",
]

#: The manifest of written reports' fingerprints, in the report folder.
MANIFEST_NAME = ".reports-manifest"
_REPORT_CODE = ("charts.py", "chartcache.py", "render.py", "templates")


@dataclass
class ReportsOutcome:
    """What one report step did (counts and paths; no patient data in the counts).

    Attributes
    ----------
    paths
        patient_id -> path of the patient's report, for every patient asked for (written
        or unchanged): the email links to it either way.
    written
        Patients whose report was (re)written because its content changed or it was missing.
    unchanged
        Patients whose report already had this content (file left untouched).
    cohort_path
        The cohort page, when the step wrote or kept one.
    cohort_written
        False when the cohort page's content was unchanged and the file left as it was.
    charts_drawn
        matplotlib renders (patient x format) this step performed.
    """

    paths: dict[str, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    cohort_path: str | None = None
    cohort_written: bool = False
    charts_drawn: int = 0

    def counts(self) -> dict[str, int]:
        """PHI-free counts for the run summary."""
        return {"reports_written": len(self.written), "reports_unchanged": len(self.unchanged),
                "charts_drawn": self.charts_drawn, "cohort_written": int(self.cohort_written)}


class ReportManifest:
    """File name -> content fingerprint of the reports in one folder.

    One small file per report (``.reports-manifest/<report name>.fp``) rather than one
    shared JSON file: the flow writes shards of reports in parallel tasks (``run.workers``),
    and per-report entries cannot lose each other's updates.

    Parameters
    ----------
    folder
        The report folder.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, str] = {}
        self._dirty: set[str] = set()

    def fingerprint(self, name: str) -> str | None:
        """The recorded fingerprint of report ``name`` (None: absent or unreadable)."""
        try:
            return (self.path / f"{name}.fp").read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None  # absent or damaged: the report counts as changed (safe side)

    def current(self, name: str, fingerprint: str) -> bool:
        """True when ``name`` was written with ``fingerprint`` and the file is still there."""
        return self.fingerprint(name) == fingerprint and (self.folder / name).is_file()

    def record(self, name: str, fingerprint: str) -> None:
        """Note that ``name`` now holds content ``fingerprint`` (written by :meth:`save`)."""
        self.entries[name] = fingerprint
        self._dirty.add(name)

    def save(self) -> None:
        """Write the recorded entries, each atomically (a crash leaves the previous one)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in sorted(self._dirty):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(self.entries[name])
                os.replace(tmp, self.path / f"{name}.fp")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        self._dirty.clear()


def content_digest(*parts: Any) -> str:
    """A 32-hex SHA-256 of ``parts`` as canonical JSON (dates as ISO text)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _split(frame: pd.DataFrame, ids: Collection[str]) -> dict[str, pd.DataFrame]:
    if frame.empty or "patient_id" not in frame.columns:
        return {}
    keys = frame["patient_id"].astype(str)
    frame = frame[keys.isin(set(ids))]
    return {str(k): g.reset_index(drop=True)
            for k, g in frame.groupby(frame["patient_id"].astype(str), sort=False)}


def write_patient_reports(
    patient_ids: Sequence[str],
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    assessments: Mapping[str, Assessment | None],
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Settings,
    kb_sources: Sequence[Mapping[str, Any]],
    folder: str | Path,
    name_of: Callable[[str], str],
    *,
    charts: ChartCache | None = None,
    png_for: Collection[str] = (),
    label: str = "reports",
) -> ReportsOutcome:
    """Write the reports of ``patient_ids`` whose content changed since the folder's last run.

    Parameters
    ----------
    patient_ids
        Patients to report on.
    observations, samples, therapies
        Store frames holding (at least) these patients' rows, read once for the batch.
    assessments
        patient_id -> the current assessment (None: never evaluated).
    histories
        patient_id -> alert history (see ``render_patient_report``).
    settings
        Resolved settings (the config version is part of the content).
    kb_sources
        Knowledge-base sources printed in every report.
    folder
        The report folder (holds the manifest and ``.charts``).
    name_of
        patient_id -> file name (``pipeline.service.patient_report_name``).
    charts
        The run's chart cache; ``ChartCache.for_reports(folder)`` when None.
    png_for
        Patients whose PNG chart is drawn now as well, for their alert email (issue #11
        item 3: drawn once here, read by ``pipeline.notify`` with ``ChartCache.png``).
    label
        Name of the progress bar (a shard's label in the flow).

    Returns
    -------
    ReportsOutcome
        Paths of every patient's report and the written / unchanged split.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    cache = charts if charts is not None else ChartCache.for_reports(target)
    drawn_before = cache.renders
    ids = [str(p) for p in patient_ids]
    parts = {"obs": _split(observations, ids), "samples": _split(samples, ids),
             "therapies": _split(therapies, ids)}
    digests = {"obs": frame_digests(observations), "samples": frame_digests(samples),
               "therapies": frame_digests(therapies)}
    static = content_digest(settings.version_label(), list(kb_sources), pipeline.__version__,
                     chart_code_version(_REPORT_CODE))
    manifest = ReportManifest(target)
    outcome = ReportsOutcome()
    wanted_png = set(png_for)
    empty = {"obs": observations.iloc[0:0], "samples": samples.iloc[0:0],
             "therapies": therapies.iloc[0:0]}
    for pid in tracked(ids, label):  # the CLI's progress display (ambient reporter)
        assessment = assessments.get(pid)
        obs, draws, lines = (parts[k].get(pid, empty[k]) for k in ("obs", "samples", "therapies"))
        chart_fp = ChartCache.fingerprint(digests["obs"].get(pid, "-"),
                                          digests["samples"].get(pid, "-"),
                                          digests["therapies"].get(pid, "-"), assessment)
        history = list(histories.get(pid, ()))
        fingerprint = content_digest(chart_fp, history, static)
        name = name_of(pid)
        path = target / name
        outcome.paths[pid] = str(path)
        patient_charts = cache.charts(pid, obs, draws, lines, assessment, fingerprint=chart_fp)
        if pid in wanted_png:
            _ = patient_charts.png  # drawn now (or read when current) for the email
        else:
            cache.discard_stale(pid, chart_fp)
        if manifest.current(name, fingerprint):
            outcome.unchanged.append(pid)
            continue
        html = render_patient_report(pid, obs, draws, lines, assessment, history, settings,
                                     kb_sources, chart_svg=patient_charts.svg)
        write_html(path, html)
        manifest.record(name, fingerprint)
        outcome.written.append(pid)
    if outcome.written:
        manifest.save()
    outcome.charts_drawn = cache.renders - drawn_before
    return outcome
