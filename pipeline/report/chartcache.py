"""One trend-chart render per patient per run, shared by the report and the alert email.

matplotlib's ``savefig`` dominates report time (about 0.3-0.5 s per format on the 2-core
reference machine, issue #11 item 3), so a patient's chart is drawn at most once per format
and the bytes are kept in a small on-disk cache beside the reports (``<reports>/.charts``):

* the report writer asks :meth:`ChartCache.charts` for the SVG it inlines into the page, and
  for the PNG of every patient that may get an email (alerts or a tier change);
* the email builder (``pipeline.notify``), which runs in a later task and possibly another
  process, reads that PNG with :meth:`ChartCache.png` (no render), or renders it through
  :meth:`ChartCache.charts` when the report step did not.

Cache entries are keyed by a content fingerprint of what the chart plots (the patient's
observations, draws, lines of therapy, the assessment the rules produced and the chart
code's own version), so a chart is re-drawn exactly when its content changed. File names
carry a hash of the patient ID, never the ID itself (issue #10 item 7).

The chart plots the rules' own quantities (``Assessment.levels``, ``next_draw_due``): one
truth per quantity (#9 item 9); this module only caches, it computes nothing clinical.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.assessment import Assessment

__all__ = [
    "ChartCache",
    "PatientCharts",
    "assessment_digest",
    "chart_code_version",
    "frame_digests",
    "patient_key",
]

_CODE_FILES = ("charts.py", "chartcache.py")
_DISK_FORMATS = frozenset({"png"})


def patient_key(patient_id: str) -> str:
    """The 16-hex hash naming a patient's files (same as ``patient-<key>.html``)."""
    return hashlib.sha256(str(patient_id).encode("utf-8")).hexdigest()[:16]


def _code_version(names: tuple[str, ...]) -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in names:
        path = here / name
        if path.is_dir():
            for item in sorted(path.iterdir()):
                if item.is_file():
                    digest.update(item.name.encode() + b"\0" + item.read_bytes())
        else:
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


_VERSIONS: dict[tuple[str, ...], str] = {}


def chart_code_version(names: tuple[str, ...] = _CODE_FILES) -> str:
    """Hash of the drawing code: an upgrade of ctdna re-draws every chart once."""
    if names not in _VERSIONS:
        _VERSIONS[names] = _code_version(names)
    return _VERSIONS[names]


def frame_digests(frame: pd.DataFrame, by: str = "patient_id") -> dict[str, str]:
    """A content hash of each patient's rows of ``frame`` (order of rows and columns ignored).

    Vectorised: pandas hashes every row at once (``hash_pandas_object``, a fixed key, so the
    value is stable across processes); only the per-patient digest of those row hashes is
    a loop over groups.

    Parameters
    ----------
    frame
        A store frame with a ``patient_id`` column (observations, samples, therapies).
    by
        The grouping column.

    Returns
    -------
    dict
        patient_id -> 32-hex digest. Patients without rows are absent.
    """
    if frame.empty or by not in frame.columns:
        return {}
    columns = sorted(str(c) for c in frame.columns)
    # text of each value (floats by repr, so exact); missing values hash as their own text
    data = frame[columns].astype(str)
    rows = pd.util.hash_pandas_object(data, index=False).to_numpy()
    keys = frame[by].astype(str).to_numpy()
    order = pd.DataFrame({"k": keys, "h": rows}).sort_values(["k", "h"], kind="mergesort")
    header = ",".join(columns).encode()
    out: dict[str, str] = {}
    for key, group in order.groupby("k", sort=False)["h"]:
        out[str(key)] = hashlib.sha256(header + group.to_numpy().tobytes()).hexdigest()[:32]
    return out


def assessment_digest(assessment: Assessment | Mapping[str, Any] | None) -> str:
    """Digest of an assessment's stored JSON (``contract_json``; the same for a stored row)."""
    if assessment is None:
        return "none"
    payload = assessment.contract_json() if isinstance(assessment, Assessment) else assessment
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class PatientCharts:
    """One patient's trend chart: SVG for the page, PNG for emails, each drawn at most once.

    Attributes
    ----------
    patient_id
        The patient.
    fingerprint
        Content hash of what the chart plots (see :meth:`ChartCache.fingerprint`).
    """

    patient_id: str
    fingerprint: str
    _frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None
    _assessment: Assessment | None
    _cache: ChartCache
    _bytes: dict[str, bytes] = field(default_factory=dict)

    def _get(self, fmt: str) -> bytes:
        if fmt in self._bytes:
            return self._bytes[fmt]
        data = self._cache.read(self.patient_id, self.fingerprint, fmt)
        if data is None:
            if self._frames is None:
                raise LookupError(f"no {fmt} chart cached and no frames to draw one")
            from pipeline.report import charts

            obs, samples, therapies = self._frames
            if fmt == "svg":
                data = charts.trend_chart_svg(obs, samples, therapies, self._assessment).encode()
            else:
                data = charts.trend_chart_png(obs, samples, therapies, self._assessment)
            self._cache.renders += 1
            self._cache.store(self.patient_id, self.fingerprint, fmt, data)
        self._bytes[fmt] = data
        return data

    @property
    def svg(self) -> str:
        """Inline SVG markup (``<svg ...>``), byte-identical to ``trend_chart_svg``."""
        return self._get("svg").decode("utf-8")

    @property
    def png(self) -> bytes:
        """PNG bytes (150 dpi), the same figure as :attr:`svg`, for the email's inline image."""
        return self._get("png")


class ChartCache:
    """Rendered trend charts of one run, in memory and (optionally) in a folder.

    Parameters
    ----------
    folder
        Where chart files live between tasks of a run, normally ``<reports>/.charts``.
        None keeps them in memory only (one process).

    Attributes
    ----------
    renders
        How many charts (format x patient) this cache object drew with matplotlib.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[tuple[str, str], bytes] = {}
        self.renders = 0

    @staticmethod
    def for_reports(reports_dir: str | Path) -> ChartCache:
        """The cache shared by the report folder ``reports_dir`` and the email builder."""
        return ChartCache(Path(reports_dir) / ".charts")

    # ------------------------------------------------------------------ keys and files

    @staticmethod
    def fingerprint(obs_digest: str, samples_digest: str, therapies_digest: str,
                    assessment: Assessment | Mapping[str, Any] | None) -> str:
        """What the chart shows, hashed: frames' digests, the assessment, the drawing code."""
        parts = (obs_digest, samples_digest, therapies_digest, assessment_digest(assessment),
                 chart_code_version())
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def _path(self, patient_id: str, fmt: str) -> Path | None:
        # only the PNG goes to disk: the SVG lives inside the report page itself, the PNG is
        # what a later task (the email builder) needs
        if self.folder is None or fmt not in _DISK_FORMATS:
            return None
        return self.folder / f"{patient_key(patient_id)}.{fmt}"

    def read(self, patient_id: str, fingerprint: str | None, fmt: str) -> bytes | None:
        """The cached chart of the patient in ``fmt``; with ``fingerprint``, only if current."""
        hit = self._memory.get((patient_id, fmt))
        if hit is not None and fingerprint is None:
            return hit
        path = self._path(patient_id, fmt)
        if path is None or not path.exists():
            return None
        meta_path = path.with_suffix(f".{fmt}.fp")
        if fingerprint is not None:
            try:
                if meta_path.read_text(encoding="ascii").strip() != fingerprint:
                    return None
            except OSError:
                return None
        return path.read_bytes()

    def store(self, patient_id: str, fingerprint: str, fmt: str, data: bytes) -> None:
        """Keep a rendered chart (memory, and the folder when there is one)."""
        self._memory[(patient_id, fmt)] = data
        path = self._path(patient_id, fmt)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)
        _write_atomic(path.with_suffix(f".{fmt}.fp"), fingerprint.encode("ascii"))

    # ------------------------------------------------------------------ the API

    def charts(self, patient_id: str, observations: pd.DataFrame, samples: pd.DataFrame,
               therapies: pd.DataFrame, assessment: Assessment | None = None, *,
               fingerprint: str | None = None) -> PatientCharts:
        """The patient's charts; drawn lazily, at most once per format and content.

        Parameters
        ----------
        patient_id
            The patient.
        observations, samples, therapies
            The patient's store frames (only this patient's rows).
        assessment
            The assessment the rules produced (its ``levels`` are the plotted ctDNA level).
        fingerprint
            Precomputed :meth:`fingerprint` (the report writer has the digests already);
            computed from the frames when None.

        Returns
        -------
        PatientCharts
            Access ``.svg`` / ``.png``: a current cached file is read, else matplotlib draws.
        """
        if fingerprint is None:
            fingerprint = self.fingerprint(
                frame_digests(observations).get(patient_id, "-"),
                frame_digests(samples).get(patient_id, "-"),
                frame_digests(therapies).get(patient_id, "-"), assessment)
        return PatientCharts(patient_id, fingerprint, (observations, samples, therapies),
                             assessment, self)

    def discard_stale(self, patient_id: str, fingerprint: str) -> None:
        """Remove the patient's cached charts that do not match ``fingerprint``.

        Called for a patient whose content changed but whose PNG was not drawn this run, so
        that :meth:`png` never hands an email an out-of-date chart.
        """
        for fmt in ("svg", "png"):
            self._memory.pop((patient_id, fmt), None)
            path = self._path(patient_id, fmt)
            if path is None or not path.exists():
                continue
            meta = path.with_suffix(f".{fmt}.fp")
            current = meta.read_text(encoding="ascii").strip() if meta.exists() else ""
            if current != fingerprint:
                path.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)

    def png(self, patient_id: str) -> bytes | None:
        """The patient's latest PNG drawn in this folder (by the report step), else None.

        For the email builder: ``deliver_pending(chart_for=cache.png)`` sends the chart the
        report step drew in the same run without drawing it again. None means nothing was
        drawn for this patient; the caller may then draw it with :meth:`charts`.
        """
        return self.read(patient_id, None, "png")
