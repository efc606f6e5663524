"""CSV/TSV variant tables: the canonical table of the contract and vendor profiles.

The canonical table (``../shared/spec/interfaces.md``, "Canonical variant table") has
``sample_id, gene, variant_type`` and either ``chrom, pos, ref, alt`` or ``protein_change``;
abundance is ``vaf`` (fraction) XOR ``vaf_percent`` (never guessed). Vendor tables are mapped
onto it by YAML profiles in ``configs/profiles/`` (see ``docs/input-formats.md``), so a new
vendor needs configuration only.

Errors name the file, the physical ``line N`` of the offending row and the column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import GenomeBuildError, InputError, InvalidVariantFileError
from pipeline.io.build import normalise_build
from pipeline.io.drawinfo import draw_date, draw_level
from pipeline.io.profiles import CANONICAL, Profile, known_profiles, load_profile, search_path
from pipeline.io.result import ReadResult
from pipeline.schema import conform_calls, group_positions, take_rows

#: Variant types a table row may declare (the contract's five).
TABLE_VARIANT_TYPES = ("snv", "mnv", "indel", "cnv", "fusion")
#: A vendor row its profile cannot type (``TP53 Splice``, ``EGFR Exon``; #9 item 4).
UNCLASSIFIED = "unclassified"
#: float32-style tolerance on the VAF bounds, as for VCFs.
VAF_TOLERANCE = 1e-6
#: None as a 0-d object array: numpy's stubs reject a bare None as np.where's third argument
_NONE = np.array(None, dtype=object)
#: Column names that hold a VAF of undeclared unit: refused in canonical tables.
_AMBIGUOUS_VAF_NAMES = {"af", "maf", "vaf%", "allele_frequency", "allele_fraction", "freq"}
_CANONICAL_REQUIRED = {"sample_id", "gene", "variant_type"}
_NUMERIC = ("pos", "vaf", "vaf_percent", "alt_reads", "depth", "copy_number", "mate_pos")
_INTEGER = ("pos", "alt_reads", "depth", "mate_pos")
_NA = {"", ".", "NA", "N/A", "na", "nan", "NaN", "None", "null"}


def _read_lines(path: Path, opener: Callable[..., Any] | None) -> list[str]:
    try:
        if opener is not None:
            with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
                return handle.read().splitlines()
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidVariantFileError(
            f"not UTF-8 text (byte {exc.start})", path=path, record="header"
        ) from None
    except (OSError, EOFError) as exc:
        raise InvalidVariantFileError(f"cannot read table ({exc})", path=path) from None


def _header_index(lines: list[str], prefix: str, detect: list[str] | None) -> int | None:
    """Index of the header row: the first non-blank, non-comment line (that holds every
    detection column, when the profile lists some)."""
    for n, line in enumerate(lines):
        if not line.strip() or (prefix and line.startswith(prefix)):
            continue
        if not detect:
            return n
        cells = _split(line)
        if set(detect) <= set(cells):
            return n
        return None
    return None


def _split(line: str, delimiter: str | None = None) -> list[str]:
    delim = delimiter or ("\t" if "\t" in line else ",")
    return [c.strip() for c in next(csv.reader([line], delimiter=delim))]


def _choose_profile(lines: list[str], path: Path, folders: list[Path]) -> Profile:
    """Canonical header first, then every profile's detection columns (search path)."""
    n = _header_index(lines, "#", None)
    if n is not None and set(_split(lines[n])) >= _CANONICAL_REQUIRED:
        return CANONICAL
    for name in known_profiles(folders):
        prof = load_profile(name, folders)
        detect = list(prof.get("detect_columns") or [])
        prefix = str(prof.get("comment_prefix", "#"))
        if detect and _header_index(lines, prefix, detect) is not None:
            return prof
    raise InvalidVariantFileError(
        "table header matches neither the canonical columns (sample_id, gene, variant_type, "
        f"...) nor a known profile ({', '.join(known_profiles(folders))}); pass a profile",
        path=path,
        record="header",
    )


def _parse_rows(
    lines: list[str], path: Path, prof: Profile
) -> tuple[pd.DataFrame, list[str]]:
    prefix = str(prof.get("comment_prefix", "#"))
    detect = list(prof.get("detect_columns") or []) or None
    start = _header_index(lines, prefix, detect)
    if start is None:
        raise InvalidVariantFileError(
            f"no header row found for profile {prof.name!r}", path=path, record="header"
        )
    delimiter = prof.get("delimiter")
    if delimiter in (None, "auto"):
        delimiter = "\t" if "\t" in lines[start] else ","
    header = _split(lines[start], delimiter)
    if len(set(header)) != len(header):
        raise InvalidVariantFileError(
            "duplicate column names", path=path, record=f"line {start + 1}"
        )
    body = [(n + 1, line) for n, line in enumerate(lines) if n > start and line.strip()
            and not (prefix and line.startswith(prefix))]
    reader = csv.reader(io.StringIO("\n".join(line for _, line in body)), delimiter=delimiter)
    rows: list[list[str]] = []
    for (lineno, _), cells in zip(body, reader, strict=False):
        if len(cells) != len(header):
            raise InvalidVariantFileError(
                f"expected {len(header)} fields, found {len(cells)}", path=path,
                record=f"line {lineno}",
            )
        rows.append([c.strip() for c in cells])
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame["_line"] = [lineno for lineno, _ in body][: len(frame)]
    return frame, header


def _fail(path: Path, frame: pd.DataFrame, mask: Any, column: str, message: str) -> None:
    """Raise for the first row where ``mask`` is true (naming its physical line)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        row = frame.loc[frame.index[mask.argmax()]]
        raise InvalidVariantFileError(
            message.format(value=row.get(column)), path=path, record=f"line {row['_line']}",
            field=column,
        )


def _normalise_id(value: str) -> str:
    """``727.0`` → ``727`` so that R/pandas float exports and integer exports agree."""
    text = str(value).strip()
    if re.fullmatch(r"-?\d+\.0+", text):
        return text.split(".", 1)[0]
    return text


def _apply_profile(frame: pd.DataFrame, prof: Profile, path: Path) -> pd.DataFrame:
    """Vendor columns → canonical columns (renames, splits, extraction, value maps)."""
    out = frame.copy()
    na = set(prof.get("na_values") or []) | _NA
    out = out.apply(lambda s: s.where(~s.isin(na), None) if s.name != "_line" else s)
    spec = prof.get("sample_id")
    if isinstance(spec, dict) and spec.get("columns"):
        missing = [c for c in spec["columns"] if c not in out.columns]
        if missing:
            raise InvalidVariantFileError(f"missing column(s) {missing}", path=path,
                                          record="header")
        parts = [out[c].map(lambda v: "" if v is None else _normalise_id(v))
                 for c in spec["columns"]]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + str(spec.get("separator", "_")) + part
        out["sample_id"] = joined
    elif isinstance(spec, dict) and spec.get("column"):
        out = out.rename(columns={spec["column"]: "sample_id"})
    # drop_rows marks "this draw had no calls" rows: kept (without gene and type) until the
    # draw's rows are selected, so that a draw of only such rows still has its date.
    marker = pd.Series(False, index=out.index)
    for rule_col, values in (prof.get("drop_rows") or {}).items():
        if rule_col in out.columns:
            marker |= out[rule_col].isin([str(v) for v in values])
    renames = {k: v for k, v in (prof.get("columns") or {}).items() if k in out.columns}
    out = out.rename(columns=renames)
    vaf_col = prof.get("vaf_column")
    if vaf_col:
        unit = prof.get("vaf_unit")
        if unit not in {"percent", "fraction"}:
            raise InputError(f"profile {prof.name!r} sets vaf_column but no vaf_unit "
                             "(percent|fraction)", field="vaf_unit")
        if vaf_col in out.columns:
            out = out.rename(columns={vaf_col: "vaf_percent" if unit == "percent" else "vaf"})
    for split in prof.get("split") or []:
        col = split["column"]
        if col in out.columns:
            into = list(split["into"])
            pieces = out[col].map(
                lambda v, into=into, sep=split.get("separator", ":"):
                (str(v).rsplit(sep, len(into) - 1) if v is not None else [None] * len(into))
            )
            for k, target in enumerate(into):
                out[target] = pieces.map(lambda p, k=k: p[k] if len(p) > k else None)
    for ext in prof.get("extract") or []:
        col = ext["column"]
        if col not in out.columns:
            continue
        found = out[col].astype("string").str.extract(re.compile(ext["pattern"]))
        for target in found.columns:
            values = found[target].astype(object).mask(found[target].isna(), None)
            if target in out.columns:
                out[target] = out[target].where(out[target].notna(), values)
            else:
                out[target] = values
    fusion = prof.get("fusion_genes")
    if fusion and fusion.get("column") in out.columns:
        found = out[fusion["column"]].astype("string").str.extract(re.compile(fusion["pattern"]))
        five, three = found["five"].astype(object), found["three"].astype(object)
        has = found["five"].notna() & found["three"].notna()
        if "gene" not in out.columns:
            out["gene"] = None
        gene = out["gene"].where(out["gene"].notna() | ~has, three)
        # The partner is the gene of the pair that is not the row's gene (Guardant writes
        # both "EML4-ALK Fusion" and the reciprocal "ALK-EML4 Fusion" under gene ALK).
        partner = five.where(five != gene, three)
        if "fusion_partner" not in out.columns:
            out["fusion_partner"] = None
        out["gene"] = gene
        out["fusion_partner"] = out["fusion_partner"].where(~has, partner)
    for col, value in (prof.get("constants") or {}).items():
        out[col] = value
    for col, mapping in (prof.get("values") or {}).items():
        if col in out.columns:
            out[col] = out[col].map(lambda v, m=mapping: m.get(v, v) if v is not None else v)
    rules = prof.get("variant_type_rules")
    if rules:
        col = rules["column"]
        if "variant_type" not in out.columns:
            out["variant_type"] = None
        if col in out.columns:
            text = out[col]
            assigned = pd.Series([None] * len(out), index=out.index, dtype=object)
            for rule in rules["rules"]:
                rx = re.compile(rule["pattern"])
                hit = assigned.isna() & text.map(lambda v, rx=rx: bool(v and rx.search(v)))
                assigned[hit.to_numpy(dtype=bool)] = rule["type"]
            out["variant_type"] = out["variant_type"].where(out["variant_type"].notna(),
                                                            assigned)
            if prof.get("untyped_rows", "unclassified") == UNCLASSIFIED:
                untyped = out["variant_type"].isna() & text.notna()
                if "gene" in out.columns:
                    untyped &= out["gene"].notna()
                out.loc[untyped.to_numpy(dtype=bool), "variant_type"] = UNCLASSIFIED
    if marker.any():
        for col in ("gene", "variant_type"):
            if col not in out.columns:
                out[col] = None
        out.loc[marker.to_numpy(dtype=bool), ["gene", "variant_type"]] = None
    return out


def _resolve_table_build(
    declared: str | None, prof: Profile, frame: pd.DataFrame, path: Path
) -> str:
    candidates: list[tuple[str, str]] = []
    if declared is not None and str(declared).strip():
        candidates.append((normalise_build(declared, path=path), "manifest"))
    if prof.get("genome_build"):
        candidates.append((normalise_build(prof["genome_build"], path=path,
                                           field=f"profile {prof.name}"), "profile"))
    if "genome_build" in frame.columns:
        values = {v for v in frame["genome_build"].dropna().unique()}
        builds = {normalise_build(v, path=path, field="genome_build") for v in values}
        if len(builds) > 1:
            raise GenomeBuildError(f"rows declare several builds {sorted(builds)}", path=path,
                                   field="genome_build")
        if builds:
            candidates.append((builds.pop(), "genome_build column"))
    if not candidates:
        raise GenomeBuildError(
            "genome build of a table cannot be detected; set genome_build in the manifest, "
            "the profile or a genome_build column",
            path=path,
            field="genome_build",
        )
    builds = {b for b, _ in candidates}
    if len(builds) > 1:
        raise GenomeBuildError(
            "conflicting genome builds: " + ", ".join(f"{s} says {b}" for b, s in candidates),
            path=path, field="genome_build",
        )
    return candidates[0][0]


def read_table(
    path: str | Path,
    *,
    sample_id: str,
    profile: str | None = None,
    genome_build: str | None = None,
    opener: Callable[..., Any] | None = None,
    profile_dirs: list[Path] | None = None,
    anchor_date: date | None = None,
) -> ReadResult:
    """Read one sample's rows of a canonical or vendor variant table.

    Parameters
    ----------
    path
        CSV or TSV (delimiter sniffed from the header row), optionally gzip-compressed.
    sample_id
        Selects this sample's rows when the table has a sample_id (or profile-built) column;
        a table without one holds a single sample.
    profile
        Profile name in ``configs/profiles`` (or ``canonical``); None to detect.
    genome_build
        Manifest build; else the profile's fixed build; else a ``genome_build`` column.
    opener
        ``gzip.open`` for compressed tables.
    profile_dirs
        Profile search path (:func:`pipeline.io.profiles.search_path`); None for the
        environment's and the shipped profiles.
    anchor_date
        Per-patient anchor of a profile with ``relative_date`` (manifest ``anchor_date``).

    Returns
    -------
    ReadResult
        ``vaf`` as a fraction (percent columns divided by 100); non-detect rows dropped;
        rows the profile cannot type kept as ``unclassified`` (warned); ``collection_date``
        set for relative-date profiles with an anchor; ``level`` for draw-level profiles.

    Raises
    ------
    InvalidVariantFileError
        Bad rows (``line N``, column), unknown layout, sample not in the table.
    GenomeBuildError
        No or conflicting build.
    """
    parsed = parse_table(path, profile=profile, opener=opener, profile_dirs=profile_dirs)
    return parsed.sample(sample_id, genome_build, anchor_date)


@dataclass
class ParsedTable:
    """A table read, parsed and mapped onto canonical columns once (issue #11 item 1).

    Several manifest rows may point at one table; each selects its rows with
    :meth:`sample`, so the file is read and mapped once per batch, not once per row.
    """

    path: Path
    profile: Profile
    header: list[str]
    raw: pd.DataFrame  # cells as delivered (strings), ``_line`` = physical line
    frame: pd.DataFrame  # after the profile's mapping (canonical column names)

    def sample(self, sample_id: str, genome_build: str | None,
               anchor_date: date | None = None) -> ReadResult:
        """This sample's calls (validated, VAF fraction), see :func:`read_table`."""
        selected = self.select(sample_id)
        build = self.build_of(selected, genome_build)
        facts = draw_facts(self.profile, selected, self.path, anchor_date)
        warnings: list[str] = []
        calls = _validate(selected, self.path, self.profile, warnings)
        return replace(self.result(selected, build, calls, warnings), **facts)

    @cached_property
    def has_sample_ids(self) -> bool:
        """True when rows carry a sample_id (else the table holds a single sample)."""
        return "sample_id" in self.frame.columns and bool(self.frame["sample_id"].notna().any())

    @cached_property
    def _positions(self) -> dict[Hashable, np.ndarray]:
        """Row positions of each (normalised) sample_id, computed once per table: a table
        shared by N manifest rows is split once, not scanned N times (issue #11)."""
        ids = self.frame["sample_id"].map(lambda v: _normalise_id(v) if v else v)
        return group_positions(ids)

    def select(self, sample_id: str) -> pd.DataFrame:
        """The rows of ``sample_id`` (all rows for a single-sample table).

        Raises
        ------
        InvalidVariantFileError
            The sample has no rows (the message lists the sample_ids present).
        """
        frame, raw = self.frame, self.raw
        if not self.has_sample_ids:
            return frame
        wanted = _normalise_id(sample_id)
        positions = self._positions.get(wanted)
        selected = frame.iloc[positions] if positions is not None else frame.iloc[0:0]
        if selected.empty:
            all_ids = sorted(str(v) for v in self._positions)
            if "sample_id" in raw.columns and (
                raw["sample_id"].map(lambda v: _normalise_id(v) if v else v) == wanted
            ).any():
                return frame.iloc[0:0]  # present only as no-alteration marker rows
            shown = ", ".join(all_ids[:10]) + (" ..." if len(all_ids) > 10 else "")
            raise InvalidVariantFileError(
                f"sample_id {sample_id!r} has no rows in this table (present: {shown})",
                path=self.path, field="sample_id",
            )
        return selected

    def build_of(self, selected: pd.DataFrame, genome_build: str | None) -> str:
        """The genome build of these rows (manifest, profile or ``genome_build`` column)."""
        return _resolve_table_build(genome_build, self.profile,
                                    selected if len(selected) else self.frame, self.path)

    def result(self, selected: pd.DataFrame, build: str, calls: pd.DataFrame,
               warnings: list[str]) -> ReadResult:
        """Fusion de-duplication and the result of one sample's validated rows."""
        return _result(self.profile, len(selected), build, calls, warnings)


def _result(prof: Profile, n_rows: int, build: str, calls: pd.DataFrame,
            warnings: list[str]) -> ReadResult:
    if prof.get("dedupe_fusions") and len(calls):
        calls = _dedupe_fusions(calls, warnings)
    return ReadResult(
        calls=conform_calls(calls),
        genome_build=build,
        vcf_sample=None,
        caller=prof.name,
        file_format="table",
        n_records=n_rows,
        warnings=warnings,
    )


def draw_facts(prof: Profile, selected: pd.DataFrame, path: Path,
               anchor_date: date | None) -> dict[str, Any]:
    """The draw's profile assay, relative-date collection date and draw-level value."""
    return {"assay": prof.get("assay"),
            "collection_date": draw_date(selected, prof, path, anchor_date),
            "level": draw_level(selected, prof, path) if prof.get("level") else None}


def parse_table(path: str | Path, *, profile: str | None = None,
                opener: Callable[..., Any] | None = None,
                profile_dirs: list[Path] | None = None) -> ParsedTable:
    """Read a table, choose its profile, parse and map its rows (no per-sample checks yet).

    Raises
    ------
    InvalidVariantFileError
        Unreadable file, unknown layout, malformed rows, missing/ambiguous canonical columns.
    """
    path = Path(path)
    prof, header, raw = _parse_raw(path, profile, opener, profile_dirs)
    return ParsedTable(path, prof, header, raw, _apply_profile(raw, prof, path))


def _parse_raw(path: Path, profile: str | None, opener: Callable[..., Any] | None,
               profile_dirs: list[Path] | None = None) -> tuple[Profile, list[str], pd.DataFrame]:
    """Read the lines, choose the profile, split the rows (before the profile's mapping)."""
    lines = _read_lines(path, opener)
    folders = profile_dirs or search_path()
    prof = load_profile(profile, folders) if profile else _choose_profile(lines, path, folders)
    raw, header = _parse_rows(lines, path, prof)
    if prof is CANONICAL:
        missing = sorted(_CANONICAL_REQUIRED - set(header))
        if missing:
            raise InvalidVariantFileError(f"missing required column(s) {', '.join(missing)}",
                                          path=path, record="header")
        ambiguous = [h for h in header if h.lower() in _AMBIGUOUS_VAF_NAMES]
        if ambiguous:
            raise InvalidVariantFileError(
                f"column {ambiguous[0]!r} has no declared unit; name it vaf (fraction 0-1) or "
                "vaf_percent (0-100)", path=path, record="header", field=ambiguous[0],
            )
    return prof, header, raw


@dataclass(frozen=True)
class TableRequest:
    """One manifest row's wish: ``sample_id``'s rows of the table at ``path``."""

    path: Path
    sample_id: str
    profile: str | None = None
    genome_build: str | None = None
    opener: Callable[..., Any] | None = None
    profile_dirs: list[Path] | None = None  # profile search path (None: env + shipped)
    anchor_date: date | None = None  # manifest anchor of relative collection days


def read_tables(requests: Sequence[TableRequest]) -> list[ReadResult | InputError]:
    """Read many samples from many tables: each file parsed once, rows checked batch-wise.

    Issue #11 item 1: a table shared by many manifest rows is read, mapped and split once;
    tables of one layout (same profile and header) are mapped by their profile and
    validated together, in one pass over all their rows. Errors stay per sample: when a
    joint pass finds a problem or has something to warn about, the group is re-checked
    file by file and sample by sample, so each sample gets exactly the error (file, line,
    column) and warnings that :func:`read_table` gives it.

    Returns
    -------
    list
        Aligned with ``requests``: a :class:`ReadResult` or the :class:`InputError` that
        rejects that sample (nothing raised).
    """
    results: list[ReadResult | InputError | None] = [None] * len(requests)
    raws: dict[tuple[Path, str | None], tuple[Profile, list[str], pd.DataFrame] |
               InputError] = {}
    groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
    for i, req in enumerate(requests):
        key = (req.path, req.profile)
        if key not in raws:
            try:
                raws[key] = _parse_raw(req.path, req.profile, req.opener, req.profile_dirs)
            except InputError as exc:
                raws[key] = exc
        parsed = raws[key]
        if isinstance(parsed, InputError):
            results[i] = parsed
        else:
            groups.setdefault((id(parsed[0]), tuple(parsed[1])), []).append(i)
    facts: dict[int, dict[str, Any]] = {}
    for members in groups.values():
        prof, chosen = _select_group(requests, members, raws, results, facts)
        _validate_group(prof, chosen, results)
    for i, found in facts.items():  # per-draw facts (#9 items 4, 7; #12 item 5)
        result = results[i]
        if isinstance(result, ReadResult):
            results[i] = replace(result, **found)
    done = [r for r in results if r is not None]
    assert len(done) == len(requests)  # every request ends as a result or an error
    return done


def _select_group(requests: Sequence[TableRequest], members: list[int],
                  raws: dict[tuple[Path, str | None], Any],
                  results: list[ReadResult | InputError | None],
                  facts: dict[int, dict[str, Any]] | None = None,
                  ) -> tuple[Profile, list[tuple[int, Path, pd.DataFrame, str]]]:
    """Map the files of one layout with one profile pass, then pick each sample's rows."""
    files = list(dict.fromkeys((requests[i].path, requests[i].profile) for i in members))
    prof, header = raws[files[0]][0], raws[files[0]][1]
    combined = pd.concat([raws[f][2] for f in files], ignore_index=True)
    file_of_row = np.repeat(np.arange(len(files)), [len(raws[f][2]) for f in files])
    combined["_file"] = file_of_row
    try:
        mapped: pd.DataFrame | None = _apply_profile(combined, prof, files[0][0])
    except InputError:
        mapped = None  # map file by file below: the error names its own file
    tables: dict[int, ParsedTable | InputError] = {}

    def table(f: int) -> ParsedTable | InputError:
        if f not in tables:
            path, raw = files[f][0], raws[files[f]][2]
            try:
                frame = (_apply_profile(raw, prof, path) if mapped is None else
                         mapped[mapped["_file"].to_numpy() == f].drop(columns="_file"))
                tables[f] = ParsedTable(path, prof, header, raw, frame)
            except InputError as exc:
                tables[f] = exc
        return tables[f]

    positions: dict[Any, np.ndarray] = {}
    with_ids: set[int] = set()
    if mapped is not None:
        file_rows = group_positions(mapped["_file"].to_numpy())
        if "sample_id" in mapped.columns:
            ids = mapped["sample_id"].map(lambda v: _normalise_id(v) if v else v)
            known = ids.notna().to_numpy()
            with_ids = set(mapped["_file"].to_numpy()[known].tolist())
            keys = pd.Series(list(zip(mapped["_file"].to_numpy()[known],
                                      ids.to_numpy()[known], strict=True)), dtype=object)
            positions = group_positions(keys)
            index_known = np.flatnonzero(known)
            positions = {k: index_known[v] for k, v in positions.items()}
    index = {f: n for n, f in enumerate(files)}
    chosen = []
    for i in members:
        req = requests[i]
        f = index[(req.path, req.profile)]
        try:
            rows = None
            if mapped is not None:
                rows = (positions.get((f, _normalise_id(req.sample_id))) if f in with_ids
                        else file_rows.get(f, np.zeros(0, dtype=int)))
            if mapped is None or rows is None or len(rows) == 0 \
                    or "genome_build" in mapped.columns:
                parsed = table(f)  # exact per-file path: errors, markers, build column
                if isinstance(parsed, InputError):
                    raise parsed
                selected = parsed.select(req.sample_id)
            else:
                parsed = None
                selected = mapped.iloc[rows]
            build = (parsed.build_of(selected, req.genome_build) if parsed is not None
                     else _resolve_table_build(req.genome_build, prof, selected, req.path))
            if facts is not None:
                facts[i] = draw_facts(prof, selected, req.path, req.anchor_date)
            chosen.append((i, req.path, selected.drop(columns="_file", errors="ignore"), build))
        except InputError as exc:
            results[i] = exc
    return prof, chosen


def _validate_group(prof: Profile, chosen: list[tuple[int, Path, pd.DataFrame, str]],
                    results: list[ReadResult | InputError | None]) -> None:
    """Validate the selected rows of tables of one layout in one pass (see read_tables)."""
    if not chosen:
        return
    calls: pd.DataFrame | None = None
    warnings: list[str] = []
    if not prof.get("dedupe_fusions"):
        combined = pd.concat([sel for _, _, sel, _ in chosen], ignore_index=True)
        owner = np.repeat(np.arange(len(chosen)), [len(sel) for _, _, sel, _ in chosen])
        try:
            calls = _validate(combined, chosen[0][1], prof, warnings)
        except InputError:
            calls = None
    if calls is None or warnings:
        for i, path, selected, build in chosen:  # exact per-sample errors and warnings
            own: list[str] = []
            try:
                checked = _validate(selected, path, prof, own)
                results[i] = _result(prof, len(selected), build, checked, own)
            except InputError as exc:
                results[i] = exc
        return
    owners = owner[calls.index.to_numpy()] if len(calls) else np.zeros(0, dtype=int)
    rows_of = group_positions(owners) if len(calls) else {}
    conformed = conform_calls(calls)
    for k, (i, _path, selected, build) in enumerate(chosen):
        positions = rows_of.get(k)
        part = take_rows(conformed, positions)
        results[i] = ReadResult(calls=part, genome_build=build, vcf_sample=None,
                                caller=prof.name, file_format="table",
                                n_records=len(selected), warnings=[])


def _validate(frame: pd.DataFrame, path: Path, prof: Profile, warnings: list[str]) -> pd.DataFrame:
    """Type, unit and placement checks; returns the calls (pre-conform)."""
    out = frame.copy()
    for col in ("gene", "variant_type", "chrom", "ref", "alt", "protein_change",
                "fusion_partner", "filter", "mate_chrom"):
        if col not in out.columns:
            out[col] = None
    # Rows without gene and variant_type mark "this draw had no calls" (documented).
    marker = out["gene"].isna() & out["variant_type"].isna()
    out = out[~marker.to_numpy(dtype=bool)]
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in sorted(_OUTPUT_COLUMNS)})
    _fail(path, out, out["gene"].isna(), "gene", "gene is empty")
    vtype = out["variant_type"].map(lambda v: str(v).strip().lower() if v is not None else v)
    allowed = TABLE_VARIANT_TYPES + ((UNCLASSIFIED,) if prof is not CANONICAL else ())
    _fail(path, out, ~vtype.isin(allowed), "variant_type",
          "unknown variant_type {value!r} (expected snv, mnv, indel, cnv or fusion)")
    out["variant_type"] = vtype
    for col in _NUMERIC:
        if col not in out.columns:
            out[col] = np.nan
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        _fail(path, out, values.isna() & out[col].notna(), col, "not a number: {value!r}")
        _fail(path, out, values < 0, col, "negative value {value}")
        if col in _INTEGER:
            _fail(path, out, values.notna() & (values % 1 != 0), col, "not a whole number: "
                  "{value}")
        out[col] = values
    both = out["vaf"].notna() & out["vaf_percent"].notna()
    _fail(path, out, both, "vaf_percent", "both vaf and vaf_percent given; give one (units "
          "are never guessed)")
    _fail(path, out, out["vaf"] > 1 + VAF_TOLERANCE, "vaf",
          "vaf {value} above 1 (vaf is a fraction; use vaf_percent for percent)")
    _fail(path, out, out["vaf_percent"] > 100 + 100 * VAF_TOLERANCE, "vaf_percent",
          "vaf_percent {value} above 100")
    source_col = next((c for c, t in (prof.get("columns") or {}).items() if t == "vaf"), None)
    vaf_origin = prof.get("vaf_column") or source_col
    percent = out["vaf_percent"].notna()
    out["vaf_source"] = np.where(
        percent, f"{prof.name}:{vaf_origin or 'vaf_percent'}(percent)",
        np.where(out["vaf"].notna(), f"{prof.name}:{vaf_origin or 'vaf'}", _NONE),
    )
    out["vaf"] = out["vaf"].where(~percent, out["vaf_percent"] / 100.0).clip(upper=1.0)
    _fail(path, out, out["alt_reads"] > out["depth"], "alt_reads",
          "alt_reads {value} exceed depth")
    # A zero VAF is not a detection: vendors (Guardant360 serial exports) fill undetected
    # timepoints with 0, but a non-detect means "below this draw's LoD" (clinical invariant).
    zero = (out["vaf"] == 0).to_numpy(dtype=bool)
    if prof.get("zero_vaf_is_non_detect", True) and zero.any():
        is_cnv = (out["variant_type"] == "cnv").to_numpy(dtype=bool)
        out.loc[zero & is_cnv, ["vaf", "vaf_source"]] = [np.nan, None]
        dropped = zero & ~is_cnv
        if dropped.any():
            warnings.append(f"{int(dropped.sum())} rows with VAF 0 are non-detects "
                            "(below the draw's LoD), not calls: dropped")
        out = out[~dropped]
    small = out["variant_type"].isin(["snv", "mnv", "indel"]).to_numpy(dtype=bool)
    placed = out[["chrom", "pos", "ref", "alt"]].notna().all(axis=1).to_numpy(dtype=bool)
    _fail(path, out, small & ~placed & out["protein_change"].isna().to_numpy(dtype=bool),
          "protein_change", "row needs chrom, pos, ref, alt or a protein_change")
    cnv = (out["variant_type"] == "cnv").to_numpy(dtype=bool)
    _fail(path, out, cnv & out["copy_number"].isna().to_numpy(dtype=bool), "copy_number",
          "CNV row without copy_number")
    fusion = (out["variant_type"] == "fusion").to_numpy(dtype=bool)
    _fail(path, out, fusion & out["fusion_partner"].isna().to_numpy(dtype=bool),
          "fusion_partner", "fusion row without fusion_partner")
    # "Amplification" / "Fusion" in the protein column of a CNV / fusion row names no change
    placeholder = out["protein_change"].isin(["Amplification", "Fusion"]).to_numpy(dtype=bool)
    out["protein_change"] = out["protein_change"].mask((cnv | fusion) & placeholder, None)
    untyped = (out["variant_type"] == UNCLASSIFIED).to_numpy(dtype=bool)
    if untyped.any():
        # #9 item 4: a row the profile cannot type keeps its draw (never a reason to lose
        # the other calls) and is never silently dropped: stored as "unclassified", warned.
        rows = out[untyped]
        shown = ", ".join(f"{g} {p or ''}".strip() + f" (line {n})" for g, p, n in
                          zip(rows["gene"], rows["protein_change"], rows["_line"], strict=True))
        warnings.append(f"{int(untyped.sum())} row(s) the profile {prof.name!r} cannot type "
                        f"stored as unclassified alterations: {shown}")
    out["filter"] = out["filter"].where(out["filter"].notna(), "PASS")
    out["record_index"] = out["_line"].astype("int64")
    out["cnv_kind"] = np.where(cnv, prof.get("cnv_kind", "plasma_cn"), _NONE)
    keep = [c for c in out.columns if not c.startswith("_") and c != "vaf_percent"
            and c != "sample_id" and c != "genome_build"]
    return out[keep].drop(columns=[c for c in keep if c not in _OUTPUT_COLUMNS])


_OUTPUT_COLUMNS = {
    "record_index", "chrom", "pos", "ref", "alt", "variant_type", "gene", "protein_change",
    "vaf", "vaf_source", "alt_reads", "depth", "filter", "copy_number", "fusion_partner",
    "mate_chrom", "mate_pos", "annotation", "cnv_kind",
}


def _dedupe_fusions(calls: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """One fusion call per gene pair: vendor exports list both reciprocal breakends of one
    event (TSO500 DNAFusionFilter); the row with the highest VAF (then alt reads) is kept."""
    fusion = calls["variant_type"] == "fusion"
    if not fusion.any():
        return calls
    part = calls[fusion].copy()
    part["_pair"] = [
        "|".join(sorted(str(x) for x in (g, p))) for g, p in zip(part["gene"],
                                                                 part["fusion_partner"],
                                                                 strict=True)
    ]
    part = part.sort_values(["vaf", "alt_reads"], ascending=False, na_position="last")
    kept = part.drop_duplicates("_pair").drop(columns="_pair")
    if len(kept) < len(part):
        warnings.append(f"{len(part) - len(kept)} reciprocal fusion rows merged into their "
                        "event")
    merged = pd.concat([calls[~fusion], kept])
    return merged.sort_values("record_index").reset_index(drop=True)
