"""Sample manifests and therapy histories (CSV, UTF-8, header row).

Validate first (PCGR practice): every row is checked before anything is stored, and one
bad manifest row is rejected on its own while the good rows proceed. A therapy history is
all-or-nothing, because a partial therapy history would silently change which line of
therapy every rule evaluates.

Confinement (issue #10 item 4): a row's ``path`` must resolve, symlinks included, inside the
manifest's folder (the batch) or inside one of the allow-listed roots of the configuration
(``ingest.allowed_roots``); ``../../etc/shadow``, absolute paths elsewhere and symlinks that
escape are rejected for that row before any file is opened.

Identifiers (issue #10 item 5): every text value that is stored is checked here against the
store's column lengths and for control characters, so that SQLite (which does not enforce
``VARCHAR(n)``) and PostgreSQL (which does) accept exactly the same manifests.
"""

from __future__ import annotations

import csv
import io
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.config import parse_iso_date
from pipeline.errors import InputError, ManifestError
from pipeline.io.profiles import validate_profile_name

MANIFEST_REQUIRED = ("sample_id", "patient_id", "collection_date", "path")
MANIFEST_OPTIONAL = (
    "vcf_sample", "genome_build", "care_team", "lod_vaf", "assay", "tumor_fraction", "profile",
    "anchor_date",
)
THERAPY_REQUIRED = ("patient_id", "drug", "start_date")
THERAPY_OPTIONAL = ("end_date", "line", "intent")
#: Therapy intent (#9 item 7): surveillance mode for curative-intent / adjuvant lines.
THERAPY_INTENTS = ("palliative", "curative", "adjuvant")

#: Longest value (in characters) of each stored text column; the store's column lengths
#: (``pipeline/store/models.py``; ``tests/store/test_manifest.py`` checks they agree).
#: PostgreSQL counts characters in ``VARCHAR(n)``; SQLite does not enforce n at all.
TEXT_LIMITS: dict[str, int] = {
    "sample_id": 128, "patient_id": 64, "care_team": 128, "vcf_sample": 256, "assay": 128,
    "drug": 128,
}


@dataclass(frozen=True)
class ManifestRow:
    """One validated manifest row (one plasma draw)."""

    manifest_path: Path
    line: int  # physical line in the manifest (header = line 1)
    sample_id: str
    patient_id: str
    collection_date: date | None  # None only with anchor_date (relative-date tables)
    path: Path  # resolved against the manifest's folder
    vcf_sample: str | None = None
    genome_build: str | None = None
    care_team: str | None = None
    lod_vaf: float | None = None  # fraction 0-1
    assay: str | None = None
    tumor_fraction: float | None = None  # fraction 0-1
    profile: str | None = None  # vendor column-mapping profile NAME (search path) for tables
    anchor_date: date | None = None  # per-patient anchor of relative collection days


@dataclass
class RowRejection:
    """A manifest row that was not ingested, with its one-line reason."""

    path: str
    error: str
    sample_id: str | None = None
    line: int | None = None


@dataclass
class ManifestReadResult:
    rows: list[ManifestRow] = field(default_factory=list)
    rejected: list[RowRejection] = field(default_factory=list)


def _read_csv_text(path: Path, kind: type[InputError]) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise kind("file not found", path=path) from None
    except OSError as exc:
        raise kind(f"cannot read file ({exc.strerror})", path=path) from None
    if not raw.strip():
        raise kind("file is empty", path=path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise kind(f"not UTF-8 (byte {exc.start})", path=path) from None


def read_csv_header(path: Path) -> list[str]:
    """Return the normalised header of a CSV file (empty list when unreadable)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [c.strip().lower() for c in first]


def is_manifest(path: Path) -> bool:
    """True when the CSV header has the four required manifest columns (contract)."""
    return set(MANIFEST_REQUIRED) <= set(read_csv_header(path))


def is_therapy_history(path: Path) -> bool:
    """True when the CSV header has the three required therapy columns (contract)."""
    header = set(read_csv_header(path))
    return set(THERAPY_REQUIRED) <= header and not set(MANIFEST_REQUIRED) <= header


def _records(text: str, path: Path, required: tuple[str, ...], kind: type[InputError]):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip().lower() for c in next(reader)]
    except StopIteration:
        raise kind("file is empty", path=path) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise kind(
            f"missing required column(s) {', '.join(missing)} (header: {', '.join(header)})",
            path=path, record="line 1",
        )
    duplicated = [c for c, n in Counter(header).items() if n > 1 and c]
    if duplicated:
        raise kind(f"duplicated column(s) {', '.join(duplicated)}", path=path, record="line 1")
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            yield line, None, f"{len(row)} fields but the header has {len(header)}"
            continue
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        yield line, values, None


def _optional_fraction(value: str, *, path: Path, line: int, field_name: str) -> float | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ManifestError(
            f"not a number: {value!r}", path=path, record=f"line {line}", field=field_name
        ) from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ManifestError(
            f"{value} is outside 0-1 (a fraction is required, not a percent)",
            path=path, record=f"line {line}", field=field_name,
        )
    return number


def check_text(value: str, *, path: Path, record: str, field: str, kind: type[InputError],
               limit: int | None = None) -> str:
    """Reject a stored text value with control characters or over ``limit`` characters.

    The value itself is not echoed (it may be a patient identifier, issue #10 item 7).
    """
    bad = next((c for c in value if unicodedata.category(c)[0] == "C"
                or unicodedata.category(c) in {"Zl", "Zp"}), None)
    if bad is not None:
        what = "NUL byte" if bad == "\0" else f"control character U+{ord(bad):04X}"
        raise kind(f"contains a {what}; identifiers must be printable text", path=path,
                   record=record, field=field)
    if limit is not None and len(value) > limit:
        raise kind(f"{len(value)} characters; at most {limit} are allowed", path=path,
                   record=record, field=field)
    return value


def _within(candidate: Path, roots: Iterable[Path]) -> bool:
    return any(candidate == root or candidate.is_relative_to(root) for root in roots)


def confine(raw: str, manifest: Path, allowed_roots: Sequence[Path], record: str) -> Path:
    """Resolve a manifest ``path`` and refuse it unless it stays inside the batch folder or
    an allow-listed root (symlinks resolved first, so a link cannot escape).

    Raises
    ------
    ManifestError
        Naming manifest, line and field ``path``.
    """
    batch = manifest.parent.resolve()
    roots = [batch, *(Path(os.path.realpath(root)) for root in allowed_roots)]
    target = Path(os.path.realpath(batch / raw))
    if not _within(target, roots):
        how = "absolute path" if Path(raw).is_absolute() else (
            "symlink" if _within(Path(os.path.abspath(batch / raw)), roots) else "path")
        raise ManifestError(
            f"{how} {raw!r} resolves outside the batch folder {batch} and outside the "
            "allowed roots (config ingest.allowed_roots); refused",
            path=manifest, record=record, field="path",
        )
    return target


def read_manifest(path: str | Path, *, allowed_roots: Sequence[str | Path] = ()
                  ) -> ManifestReadResult:
    """Read and validate a sample manifest.

    Parameters
    ----------
    path
        The manifest CSV. Variant-file paths are resolved against its folder.
    allowed_roots
        Absolute folders outside the manifest's folder that rows may also name
        (``ingest.allowed_roots`` of the configuration); everything else is refused.

    Returns
    -------
    ManifestReadResult
        Valid rows, and rejected rows with one-line reasons (file, line, field).

    Raises
    ------
    ManifestError
        When the file as a whole is unusable (missing, empty, missing columns).
    """
    manifest = Path(path)
    text = _read_csv_text(manifest, ManifestError)
    result = ManifestReadResult()
    candidates: list[ManifestRow] = []
    for line, values, problem in _records(text, manifest, MANIFEST_REQUIRED, ManifestError):
        if values is None:
            result.rejected.append(
                RowRejection(str(manifest), f"{manifest}: line {line}: {problem}", line=line)
            )
            continue
        try:
            candidates.append(_manifest_row(manifest, line, values,
                                            [Path(r) for r in allowed_roots]))
        except InputError as exc:
            result.rejected.append(
                RowRejection(str(manifest), exc.one_line(), values.get("sample_id") or None, line)
            )
    counts = Counter(row.sample_id for row in candidates)
    for row in candidates:
        if counts[row.sample_id] > 1:
            lines = ", ".join(str(r.line) for r in candidates if r.sample_id == row.sample_id)
            error = ManifestError(
                f"sample_id {row.sample_id!r} appears {counts[row.sample_id]} times "
                f"(lines {lines}); each draw needs a unique sample_id",
                path=manifest, record=f"line {row.line}", field="sample_id",
            )
            result.rejected.append(
                RowRejection(str(manifest), error.one_line(), row.sample_id, row.line)
            )
        else:
            result.rows.append(row)
    return result


def _manifest_row(manifest: Path, line: int, values: dict[str, str],
                  allowed_roots: Sequence[Path]) -> ManifestRow:
    record = f"line {line}"
    anchor = None
    if values.get("anchor_date"):
        anchor = parse_iso_date(values["anchor_date"], path=manifest, record=record,
                                field="anchor_date", kind=ManifestError)
    for column in MANIFEST_REQUIRED:
        if column == "collection_date" and anchor is not None:
            continue  # the table's relative day + anchor_date give the date (#12 item 5)
        if not values.get(column):
            raise ManifestError("required value is empty", path=manifest, record=record,
                                field=column)
    for column, value in values.items():
        if value and (column in TEXT_LIMITS or column in MANIFEST_REQUIRED
                      or column in MANIFEST_OPTIONAL):
            check_text(value, path=manifest, record=record, field=column, kind=ManifestError,
                       limit=TEXT_LIMITS.get(column))
    profile = values.get("profile") or None
    if profile is not None:
        try:
            profile = validate_profile_name(profile, path=manifest, record=record)
        except InputError as exc:
            raise ManifestError(exc.message, path=manifest, record=record,
                                field="profile") from None
    variant_path = confine(values["path"], manifest, allowed_roots, record)
    if not variant_path.is_file():
        raise ManifestError(
            f"variant file {values['path']!r} does not exist (resolved to {variant_path})",
            path=manifest, record=record, field="path",
        )
    collection = None
    if values.get("collection_date"):
        collection = parse_iso_date(values["collection_date"], path=manifest, record=record,
                                    field="collection_date", kind=ManifestError)
    return ManifestRow(
        manifest_path=manifest,
        line=line,
        sample_id=values["sample_id"],
        patient_id=values["patient_id"],
        collection_date=collection,
        path=variant_path,
        vcf_sample=values.get("vcf_sample") or None,
        genome_build=values.get("genome_build") or None,
        care_team=values.get("care_team") or None,
        lod_vaf=_optional_fraction(values.get("lod_vaf", ""), path=manifest, line=line,
                                   field_name="lod_vaf"),
        assay=values.get("assay") or None,
        tumor_fraction=_optional_fraction(values.get("tumor_fraction", ""), path=manifest,
                                          line=line, field_name="tumor_fraction"),
        profile=profile,
        anchor_date=anchor,
    )


def _therapy_line_number(value: str | None, source: Path, record: str) -> int | None:
    """The optional ``line`` column: a whole number >= 1, or None when empty."""
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ManifestError(f"not a whole number: {value!r}", path=source,
                            record=record, field="line") from None
    if number < 1:
        raise ManifestError("must be 1 or more", path=source, record=record, field="line")
    return number


def _therapy_intent(value: str | None, source: Path, record: str) -> str | None:
    """The optional ``intent`` column (#9 item 7); None when empty (read as palliative)."""
    intent = (value or "").strip().lower() or None
    if intent is not None and intent not in THERAPY_INTENTS:
        raise ManifestError(f"unknown intent {value!r} (expected "
                            f"{', '.join(THERAPY_INTENTS)}, or empty for palliative)",
                            path=source, record=record, field="intent")
    return intent


def read_therapies(path: str | Path) -> pd.DataFrame:
    """Read and validate a therapy history; all rows or none.

    Returns
    -------
    pandas.DataFrame
        ``patient_id, line, drug, start_date, end_date, intent`` (dates as
        ``datetime.date``; ``intent`` ``palliative|curative|adjuvant`` or None when not
        given, read as palliative); when ``line`` is absent it is numbered per patient in
        start-date order.

    Raises
    ------
    ManifestError
        Naming the file, line and field of the first problem.
    """
    source = Path(path)
    text = _read_csv_text(source, ManifestError)
    rows: list[dict[str, object]] = []
    for line, values, problem in _records(text, source, THERAPY_REQUIRED, ManifestError):
        record = f"line {line}"
        if values is None:
            raise ManifestError(str(problem), path=source, record=record)
        for column in THERAPY_REQUIRED:
            if not values.get(column):
                raise ManifestError("required value is empty", path=source, record=record,
                                    field=column)
        for column in ("patient_id", "drug"):
            check_text(values[column], path=source, record=record, field=column,
                       kind=ManifestError, limit=TEXT_LIMITS[column])
        start = parse_iso_date(values["start_date"], path=source, record=record,
                               field="start_date", kind=ManifestError)
        end = None
        if values.get("end_date"):
            end = parse_iso_date(values["end_date"], path=source, record=record, field="end_date",
                                 kind=ManifestError)
            if end < start:
                raise ManifestError(f"end_date {end} is before start_date {start}",
                                    path=source, record=record, field="end_date")
        line_number = _therapy_line_number(values.get("line"), source, record)
        intent = _therapy_intent(values.get("intent"), source, record)
        rows.append({"patient_id": values["patient_id"], "drug": values["drug"].strip().lower(),
                     "start_date": start, "end_date": end, "line": line_number,
                     "intent": intent, "_line": line})
    frame = pd.DataFrame(rows, columns=["patient_id", "drug", "start_date", "end_date", "line",
                                        "intent", "_line"])
    if frame.empty:
        raise ManifestError("no therapy rows", path=source)
    frame = frame.sort_values(["patient_id", "start_date", "_line"], kind="stable")
    missing_line = frame["line"].isna()
    if missing_line.any():
        if not missing_line.all():
            first = int(frame.loc[missing_line, "_line"].iloc[0])
            raise ManifestError("line must be given on every row or on none", path=source,
                                record=f"line {first}", field="line")
        frame["line"] = frame.groupby("patient_id").cumcount() + 1
    frame["line"] = frame["line"].astype(int)
    duplicated = frame.duplicated(["patient_id", "line"], keep="first")
    if duplicated.any():
        dup = frame.loc[duplicated].iloc[0]
        raise ManifestError(f"patient {dup['patient_id']} has line {dup['line']} twice",
                            path=source, record=f"line {int(dup['_line'])}", field="line")
    return frame.drop(columns="_line").reset_index(drop=True)
