"""``ctdna export``: observations, assessments and alerts for spreadsheets, LIMS and EHRs.

Issue #14 item 4. One use case (:func:`export`) gathers the data once
(:mod:`pipeline.export.data`: the store's observations and the rule engine's assessments,
nothing recomputed) and hands it to one writer per format, registered in :data:`FORMATS`
(one module per format, like CNVkit's ``READERS``):

* ``tsv`` / ``csv`` (:mod:`pipeline.export.tabular`): one file per table, formula-safe;
* ``json`` (:mod:`pipeline.export.jsondoc`): one document validated against the published
  JSON Schema ``pipeline/export/schemas/export-v1.schema.json`` (``schema_version``);
* ``fhir`` (:mod:`pipeline.export.fhir`): a FHIR ``Bundle`` after the HL7 Genomics
  Reporting IG, built and validated with ``fhir.resources``.

Units: VAF, LoD and tumour fraction are fractions 0-1 in every format (the column or field
name says ``_fraction``); a non-detect is "below this draw's LoD" (``detected`` false with
the draw's LoD), never a VAF of 0.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.export.data import ExportData
    from pipeline.knowledge import KnowledgeBase
    from pipeline.store.repository import Store

Writer = Callable[["ExportData", Path, tuple[str, ...]], list[Path]]

#: The tables an export can hold.
WHATS = ("observations", "assessments", "alerts")


def _writer(fmt: str) -> Writer:
    # Imported on use: fhir.resources and jsonschema load only for their format.
    if fmt in ("tsv", "csv"):
        from pipeline.export import tabular

        return tabular.writer(fmt)
    if fmt == "json":
        from pipeline.export import jsondoc

        return jsondoc.write
    from pipeline.export import fhir

    return fhir.write


#: The formats; the one list a new format is added to (with its branch in ``_writer``).
FORMATS: tuple[str, ...] = ("tsv", "csv", "json", "fhir")


def export(store: Store, settings: Settings, kb: KnowledgeBase, out: Path, *,
           fmt: str, what: tuple[str, ...] = WHATS, patient_ids: list[str] | None = None,
           as_of: date | None = None) -> list[Path]:
    """Write the export and return the files written.

    Parameters
    ----------
    out
        A folder (created when missing); files are written atomically inside it (temporary
        file, then rename), so a failed export leaves no half-written file.
    fmt
        One of :data:`FORMATS`.
    what
        Tables to export (``observations``, ``assessments``, ``alerts``).
    patient_ids
        Restrict to these patients (all when None); unknown patients are an input error.
    as_of
        Evaluation date of the assessments (today when None).

    Raises
    ------
    InputError
        Unknown format or table, unknown patient, or an output folder that cannot be
        written (exit status 2 at the CLI).
    """
    from pipeline.export.data import collect

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (expected one of "
                         f"{', '.join(FORMATS)})", field="--format")
    unknown = [w for w in what if w not in WHATS]
    if unknown or not what:
        raise InputError(f"unknown table {unknown[0] if unknown else ''!r} (expected "
                         f"{', '.join(WHATS)} or all)", field="--what")
    if out.exists() and not out.is_dir():
        raise InputError("is not a folder", path=out, field="--out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc.strerror})", path=out,
                         field="--out") from None
    data = collect(store, settings, kb, patient_ids, as_of)
    return _writer(fmt)(data, out, what)
