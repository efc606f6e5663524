"""Load and validate the knowledge-base data files in ``configs/knowledge/``.

The knowledge base is data (YAML manifest + TSV tables). This module reads them, checks
internal consistency (a defect in shipped data raises :class:`KnowledgeBaseError`) and builds
the derived lookup tables recognition needs: per-build codon-position tables, the entry table
(curated entries + entries generated from the hotspot alleles, codon classes and CHIP genes)
and the activity table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import yaml
from pydantic import ValidationError

from pipeline.errors import KnowledgeBaseError
from pipeline.knowledge.schema import LABELS, Manifest
from pipeline.knowledge.sequence import IUPAC, complement, translate_iupac
from pipeline.schema import CATEGORIES
from pipeline.yamlio import load_yaml

BUILDS = ("GRCh37", "GRCh38")
ACTIVITIES = ("S", "I", "R", "unknown")
_VERSION_RE = re.compile(r"^\d{4}\.\d{1,2}\.\d+$")
#: Exact column sets of the curated tables (unknown or missing columns are errors).
TABLE_COLUMNS = {
    "alterations": ("kb_id", "gene", "alteration", "category", "hgvs_c", "hgvs_p", "transcript",
                    "aliases", "components", "evidence_label", "citations", "notes"),
    "activity": ("kb_id", "drug", "activity", "reported", "evidence_label", "citation"),
}


class ActivityCell(NamedTuple):
    """One row of ``activity.tsv``: a drug's activity against one knowledge-base entry."""

    kb_id: str
    drug: str
    activity: str  # S / I / R / unknown
    reported: str
    evidence_label: str
    citation: str


@dataclass(frozen=True)
class KnowledgeData:
    """Everything loaded from one knowledge-base folder (read-only after construction)."""

    folder: Path
    manifest: dict[str, Any]
    codons: pd.DataFrame  # one row per codon (codon_id, gene, aa_pos, ref_aa, ref_codon, ...)
    codon_positions: dict[str, pd.DataFrame]  # build -> chrom_norm, pos, codon_row, base_idx
    hotspot_alleles: pd.DataFrame
    entries: pd.DataFrame  # kb_id-indexed entries (curated + generated)
    activity: pd.DataFrame  # kb_id, drug, activity, reported, evidence_label, citation
    alias_index: dict[str, str] = field(default_factory=dict)  # "GENE:SHORT" -> kb_id

    def text(self, kb_id: str, column: str) -> str:
        """One cell of ``entries`` as text (every entry column is text: TSVs read with
        ``dtype=str``, generated rows built from strings); raises KeyError for an unknown id."""
        return str(self.entries.at[kb_id, column])


def read_tsv(path: Path, kind: str | None = None) -> pd.DataFrame:
    """Read a knowledge-base TSV (``#`` comments); ``kind`` checks its exact columns."""
    if not path.is_file():
        raise KnowledgeBaseError(f"{path}: knowledge-base table missing")
    try:
        frame = pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise KnowledgeBaseError(f"{path}: unreadable knowledge-base table ({exc})") from exc
    if kind is not None:
        expected = TABLE_COLUMNS[kind]
        unknown = [c for c in frame.columns if c not in expected]
        missing = [c for c in expected if c not in frame.columns]
        if unknown or missing:
            raise KnowledgeBaseError(
                f"{path}: columns must be {', '.join(expected)}"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else ""))
    return frame


_read_tsv = read_tsv


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a YAML mapping of the knowledge base (manifest or lab override)."""
    if not path.is_file():
        raise KnowledgeBaseError(f"{path}: knowledge-base manifest missing")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError(f"{path}: invalid YAML ({exc})") from exc
    _require(isinstance(data, dict), str(path), "top level must be a mapping")
    return data


def validate_manifest(manifest: dict[str, Any], where: str) -> None:
    """Validate ``manifest`` against :class:`~pipeline.knowledge.schema.Manifest`.

    Raises
    ------
    KnowledgeBaseError
        Naming the file and the first offending field (unknown keys are errors).
    """
    try:
        Manifest.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise KnowledgeBaseError(f"{where}: field {field_name}: {first['msg']}") from None


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise KnowledgeBaseError(f"{where}: {message}")


def norm_chrom(value: str) -> str:
    """Chromosome name without a ``chr`` prefix (``chr2`` -> ``2``; ``chrM`` -> ``MT``)."""
    text = str(value).strip()
    if text.lower().startswith("chr"):
        text = text[3:]
    return "MT" if text.upper() == "M" else text.upper() if text.lower() in {"x", "y"} else text


def canonical_compound(parts: list[str]) -> str:
    """Canonical compound name: components sorted by residue number (``L1196M+G1202R``)."""
    def key(p: str) -> tuple[int, str]:
        digits = re.search(r"\d+", p)
        return (int(digits.group(0)) if digits else 0, p)

    return "+".join(sorted(dict.fromkeys(parts), key=key))


def _load_codons(folder: Path, name: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    path = folder / name
    codons = _read_tsv(path)
    # line = data row + 2 (header line, 1-based), as before: RangeIndex rows from read_tsv
    for line, (_, row) in enumerate(codons.iterrows(), start=2):
        where = f"{path}: line {line} ({row['codon_id']})"
        ref_codon = row["ref_codon"].upper()
        _require(len(ref_codon) == 3 and all(b in IUPAC for b in ref_codon), where,
                 f"ref_codon {ref_codon!r} is not three IUPAC bases")
        _require(translate_iupac(ref_codon) == row["ref_aa"], where,
                 f"ref_codon {ref_codon} does not translate to {row['ref_aa']}")
        _require(row["strand"] in {"+", "-"}, where, "strand must be + or -")
        step = -1 if row["strand"] == "-" else 1
        for build in ("grch37", "grch38"):
            pos = [int(row[f"{build}_pos{k}"]) for k in (1, 2, 3)]
            _require(pos[1] - pos[0] == step and pos[2] - pos[1] == step, where,
                     f"{build} codon positions {pos} inconsistent with strand {row['strand']}")
    codons["aa_pos"] = codons["aa_pos"].astype(int)
    codons["ref_codon"] = codons["ref_codon"].str.upper()
    codons = codons.reset_index(drop=True)
    positions: dict[str, pd.DataFrame] = {}
    for build in BUILDS:
        key = build.lower()
        parts = []
        for k in range(3):
            parts.append(pd.DataFrame({
                "chrom_norm": codons[f"{key}_chrom"].map(norm_chrom),
                "pos": codons[f"{key}_pos{k + 1}"].astype("int64"),
                "codon_row": codons.index.to_numpy(),
                "base_idx": k,
            }))
        table = pd.concat(parts, ignore_index=True)
        dup = table.duplicated(["chrom_norm", "pos"], keep=False)
        _require(not dup.any(), str(path), f"{build}: a genomic position belongs to two codons")
        positions[build] = table
    return codons, positions


def _generated_entries(manifest: dict[str, Any], hot: pd.DataFrame,
                       codons: pd.DataFrame) -> list[dict[str, str]]:
    """Entries for bypass/transformation hotspots, codon classes and CHIP genes."""
    genes = manifest["genes"]
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for _, h in hot.iterrows():
        gene = h["gene"]
        if gene == "ALK":
            continue  # ALK entries are curated in alterations.tsv
        kb_id = f"{gene}:{h['protein']}"
        if kb_id in seen:
            continue
        seen.add(kb_id)
        rule = genes.get(gene, {})
        label = "verified" if h["grch37_source"] == "DoCM" else "derived"
        if rule.get("class_label") == "recalled-unverified":
            label = "recalled-unverified"
        rows.append({
            "kb_id": kb_id, "gene": gene, "alteration": h["protein"],
            "category": rule.get("category", "other"), "hgvs_c": h["hgvs_c"], "hgvs_p": "",
            "transcript": rule.get("transcript", h["transcript"]), "aliases": "",
            "components": "", "evidence_label": label,
            "citations": f"hotspot_alleles.tsv ({h['grch37_source']}); {rule.get('citation', '')}",
            "notes": "generated from hotspot_alleles.tsv",
        })
    for _, c in codons[codons["any_change_category"] != ""].iterrows():
        gene = c["gene"]
        rule = genes.get(gene, {})
        rows.append({
            "kb_id": f"{gene}:{c['ref_aa']}{c['aa_pos']}X", "gene": gene,
            "alteration": f"{c['ref_aa']}{c['aa_pos']}X", "category": c["any_change_category"],
            "hgvs_c": "", "hgvs_p": "", "transcript": c["transcript"], "aliases": "",
            "components": "",
            "evidence_label": "recalled-unverified" if rule.get("class_label") ==
            "recalled-unverified" else "verified",
            "citations": rule.get("citation", ""),
            "notes": "codon class: any amino-acid change at this hotspot codon",
        })
    for gene in manifest.get("chip_genes", []):
        rows.append({
            "kb_id": f"{gene}:CHIP", "gene": gene, "alteration": "", "category": "chip",
            "hgvs_c": "", "hgvs_p": "", "transcript": "", "aliases": "", "components": "",
            "evidence_label": manifest.get("chip_label", "recalled-unverified"),
            "citations": manifest.get("chip_citation", ""),
            "notes": "clonal haematopoiesis gene: excluded from the ctDNA level",
        })
    return rows


def load_data(folder: Path, overrides: Path | None = None) -> KnowledgeData:
    """Read and validate a knowledge-base folder, with an optional lab override folder.

    Parameters
    ----------
    folder
        The shipped knowledge base (``configs/knowledge``) or another full KB version.
    overrides
        A lab override folder (:mod:`pipeline.knowledge.overrides`); its content is merged
        over the shipped data and validated by the same schema. Shipped files are never
        written.

    Raises
    ------
    KnowledgeBaseError
        Missing or inconsistent data (unknown key/category/label/activity, codon that does not
        translate to its amino acid, activity for an unknown entry, bad version string).
    """
    from pipeline.knowledge.overrides import apply_overrides

    manifest_path = folder / "manifest.yaml"
    manifest = read_manifest(manifest_path)
    validate_manifest(manifest, str(manifest_path))
    files = manifest.get("files", {})
    curated = read_tsv(folder / files.get("alterations", "alterations.tsv"), "alterations")
    activity = read_tsv(folder / files.get("activity", "activity.tsv"), "activity")
    lab_label = ""
    if overrides is not None:
        manifest, curated, activity, lab_label = apply_overrides(
            overrides, manifest, curated, activity)
    version = str(manifest.get("version", ""))
    _require(bool(_VERSION_RE.match(version)), str(manifest_path),
             f"version {version!r} is not YYYY.MM.PATCH")
    if lab_label:
        manifest = {**manifest, "lab_version": f"{version}+{lab_label}"}
    codons, positions = _load_codons(folder, files.get("codons", "codons.tsv"))
    hot = _read_tsv(folder / files.get("hotspot_alleles", "hotspot_alleles.tsv"))
    entries = pd.concat(
        [curated, pd.DataFrame(_generated_entries(manifest, hot, codons))], ignore_index=True
    )
    where = str(folder / files.get("alterations", "alterations.tsv"))
    _require(not entries["kb_id"].duplicated().any(), where,
             f"duplicate kb_id {entries.loc[entries['kb_id'].duplicated(), 'kb_id'].tolist()}")
    bad_cat = set(entries["category"]) - set(CATEGORIES)
    _require(not bad_cat, where, f"unknown categories {sorted(bad_cat)}")
    bad_label = set(entries["evidence_label"]) - set(LABELS)
    _require(not bad_label, where, f"unknown evidence labels {sorted(bad_label)}")
    entries = entries.set_index("kb_id", drop=False)
    a_where = str(folder / files.get("activity", "activity.tsv"))
    _require(set(activity["activity"]) <= set(ACTIVITIES), a_where,
             "activity must be S/I/R/unknown")
    _require(set(activity["evidence_label"]) <= set(LABELS), a_where, "unknown evidence label")
    unknown = set(activity["kb_id"]) - set(entries.index)
    _require(not unknown, a_where, f"activity for unknown entries {sorted(unknown)}")
    unknown_drugs = set(activity["drug"]) - set(manifest.get("drugs", {}))
    _require(not unknown_drugs, a_where, f"unknown drugs {sorted(unknown_drugs)}")
    alias_index: dict[str, str] = {}
    for kb_id, row in entries.iterrows():
        names = [row["alteration"], *[a for a in row["aliases"].split(";") if a]]
        if row["components"]:
            names.append(canonical_compound(row["components"].split(";")))
        for name in names:
            alias_index[f"{row['gene']}:{name.upper()}"] = str(kb_id)
    # every hotspot allele must sit on a codon whose reference agrees with the allele
    _check_hotspots(hot, codons, positions, folder)
    return KnowledgeData(folder, manifest, codons, positions, hot, entries, activity, alias_index)


def _check_hotspots(hot: pd.DataFrame, codons: pd.DataFrame,
                    positions: dict[str, pd.DataFrame], folder: Path) -> None:
    """Every substitution hotspot base lies on a codon whose reference admits its REF base."""
    where = folder / "hotspot_alleles.tsv"
    for build in BUILDS:
        key = build.lower()
        subs = hot[(hot[f"{key}_ref"].str.len() == hot[f"{key}_alt"].str.len())
                   & hot[f"{key}_ref"].str.fullmatch(r"[ACGT]+")]
        parts = []
        for i in range(int(subs[f"{key}_ref"].str.len().max() or 0)):
            s = subs[subs[f"{key}_ref"].str.len() > i]
            parts.append(pd.DataFrame({
                "label": s["gene"] + " " + s["protein"],
                "chrom_norm": s[f"{key}_chrom"].map(norm_chrom),
                "pos": s[f"{key}_pos"].astype("int64") + i,
                "base": s[f"{key}_ref"].str[i],
            }))
        bases = pd.concat(parts, ignore_index=True)
        merged = bases.merge(positions[build], on=["chrom_norm", "pos"], how="left")
        missing = merged[merged["codon_row"].isna()]
        _require(missing.empty, f"{where}: {build}",
                 f"hotspot bases not on any codon: {missing['label'].tolist()[:5]}")
        rows = merged["codon_row"].astype(int).to_numpy()
        strand = codons["strand"].to_numpy()[rows]
        coding = [complement(b) if st == "-" else b for b, st in zip(merged["base"], strand,
                                                                      strict=True)]
        ref_codons: list[str] = codons["ref_codon"].tolist()
        expected = [ref_codons[r][k] for r, k in
                    zip(rows.tolist(), merged["base_idx"].astype(int).tolist(), strict=True)]
        bad = [lab for lab, c, e in zip(merged["label"], coding, expected, strict=True)
               if c not in IUPAC[e]]
        _require(not bad, f"{where}: {build}", f"REF disagrees with the codon table: {bad[:5]}")
