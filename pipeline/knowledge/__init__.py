"""The curated ALK resistance and bypass knowledge base (issue #3).

The knowledge is data in ``configs/knowledge/`` (manifest.yaml + TSV tables, see
``docs/knowledge-base.md``); this package loads it, recognises calls
(:meth:`KnowledgeBase.annotate`) and suggests therapy options
(:meth:`KnowledgeBase.therapy_options`). Nothing here reads ``../shared`` at runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import configs_dir
from pipeline.knowledge.data import ActivityCell, KnowledgeData, load_data
from pipeline.knowledge.recognize import CNV_KINDS, Recognizer
from pipeline.knowledge.therapy import TherapyAdvice, TherapyAdvisor

__all__ = [
    "CNV_KINDS",
    "KnowledgeBase",
    "KnowledgeEntry",
    "TherapyAdvice",
    "default_knowledge_dir",
    "knowledge_base_for",
    "load_knowledge_base",
]


@dataclass(frozen=True)
class KnowledgeEntry:
    """One knowledge-base entry with its per-drug activity.

    ``activity`` maps drug -> ``{"activity": S|I|R|unknown, "reported", "evidence_label",
    "citation"}``; a drug absent from the mapping has no data (unknown).
    """

    kb_id: str
    gene: str
    alteration: str
    category: str
    evidence_label: str
    verified: bool
    citations: str
    hgvs_c: str = ""
    hgvs_p: str = ""
    transcript: str = ""
    aliases: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    notes: str = ""
    activity: dict[str, dict[str, str]] = field(default_factory=dict)
    codon: dict[str, Any] | None = None


class KnowledgeBase:
    """Loaded knowledge base: recognition, therapy options and provenance.

    Parameters
    ----------
    data
        Validated data from :func:`pipeline.knowledge.data.load_data`.
    """

    def __init__(self, data: KnowledgeData) -> None:
        self._data = data
        self._recognizer = Recognizer(data)
        self._advisor = TherapyAdvisor(data)
        #: ``YYYY.MM.PATCH`` of the shipped data, ``+lab.<sha8>`` with a lab override.
        self.version: str = str(data.manifest.get("lab_version") or data.manifest["version"])
        self.base_version: str = str(data.manifest["version"])

    @property
    def chip_genes(self) -> tuple[str, ...]:
        """Clonal-haematopoiesis genes: THE list (config ``rules.chip_genes`` only adds)."""
        return tuple(str(g).upper() for g in self._data.manifest.get("chip_genes", []))

    def mark_chip(self, observations: pd.DataFrame) -> pd.DataFrame:
        """Observations with ``category`` = ``chip`` for every call in a KB CHIP gene.

        Stored annotations may predate this KB version (e.g. IDH1 before 2026.12); the rules
        re-apply the current list so that a myeloid clone never drives the ctDNA level
        (rule Q2, issue #13). Returns the same frame when nothing changes.
        """
        if observations.empty or "gene" not in observations.columns:
            return observations
        genes = observations["gene"].astype("object").fillna("").astype(str).str.upper()
        hit = genes.isin(self.chip_genes) & (observations["category"] != "chip")
        if not hit.any():
            return observations
        out = observations.copy()
        out.loc[hit, "category"] = "chip"
        return out

    @property
    def data(self) -> KnowledgeData:
        """The underlying tables (read-only use)."""
        return self._data

    def annotate(self, calls: pd.DataFrame, genome_build: str,
                 cnv_kind: str = "plasma_cn") -> pd.DataFrame:
        """Recognise calls; return a copy with ``gene``, ``alteration``, ``category``,
        ``kb_id`` and ``kb_verified`` filled (``variant_type``/``fusion_partner`` updated for
        breakend pairs recognised as ALK fusions).

        Parameters
        ----------
        calls
            A calls frame (``pipeline.schema.CALL_COLUMNS``; missing columns are tolerated).
            ``pos`` is 1-based; ``copy_number`` is in the unit named by ``cnv_kind``.
        genome_build
            ``GRCh37`` or ``GRCh38`` (chromosome names with or without ``chr``).
        cnv_kind
            What ``copy_number`` means for this assay: ``plasma_cn`` (copies, Guardant pCN),
            ``absolute_cn`` (copies), ``fold_change`` (ratio) or ``log2_ratio``.

        Raises
        ------
        InputError
            Unknown genome build or cnv_kind.
        """
        return self._recognizer.annotate(calls, genome_build, cnv_kind)

    def therapy_options(self, alterations: list[tuple[str, str]],
                        current_drug: str | None, *,
                        prior_drugs: Iterable[str] | None = None,
                        line: int | None = None) -> TherapyAdvice:
        """Therapy options for ``[(gene, alteration), ...]`` observed together.

        ``alteration`` uses the observation names (``G1202R``, ``amplification``,
        ``EML4-ALK fusion``); compound ALK mutations may be given as separate tuples or as one
        ``G1202R+L1196M``. ``current_drug`` (any alias or brand name) is never suggested again.

        Options respect each drug's approved indication and line (issue #13 item 2): the ALK
        TKIs in ``prior_drugs`` (earlier lines) and ``current_drug`` decide whether the patient
        is ALK-inhibitor-naive (first-line indications) or pretreated (later-line
        indications, e.g. lorlatinib after a second-generation TKI; ensartinib never). An
        active drug outside its indication is named in a note, never offered as approved.
        ``line`` (1-based) is only used to flag an incomplete therapy history.
        """
        expanded: list[tuple[str, str]] = []
        for gene, alteration in alterations:
            if gene and str(gene).upper() == "ALK" and alteration and "+" in alteration:
                expanded.extend(("ALK", part) for part in alteration.split("+"))
            else:
                expanded.append((gene, alteration))
        return self._advisor.advise(expanded, current_drug, prior_drugs=prior_drugs, line=line)

    def drug_activity(self, kb_id: str | None, drug: str | None) -> dict[str, str] | None:
        """Activity of ``drug`` (any alias) against the entry ``kb_id`` (#9 item 2).

        Returns ``{"drug", "activity" (S/I/R/unknown), "reported", "evidence_label",
        "citation"}``, or None when the knowledge base has no cell for the pair.
        """
        if not kb_id or not drug:
            return None
        name = self._advisor.drug_name(drug)
        row = self._advisor.activity.get((kb_id, name)) if name else None
        if row is None:
            return None
        return {"drug": str(name), "activity": str(row.activity), "reported": str(row.reported),
                "evidence_label": str(row.evidence_label), "citation": str(row.citation)}

    def entry(self, kb_id: str) -> KnowledgeEntry:
        """The entry ``kb_id`` (as written to ``observations.kb_id``).

        Raises
        ------
        KeyError
            When ``kb_id`` is not in this knowledge-base version.
        """
        entries = self._data.entries
        if kb_id not in entries.index:
            raise KeyError(f"kb_id {kb_id!r} not in knowledge base {self.version}")
        def text(column: str) -> str:
            return self._data.text(kb_id, column)

        act = self._data.activity[self._data.activity["kb_id"] == kb_id]
        cells = (ActivityCell(*t) for t in
                 act[list(ActivityCell._fields)].itertuples(index=False, name=None))
        activity = {
            c.drug: {"activity": c.activity, "reported": c.reported,
                     "evidence_label": c.evidence_label, "citation": c.citation}
            for c in cells
        }
        codons = self._data.codons
        parts = text("alteration")
        codon = None
        if parts and parts[0].isalpha() and parts[1:2].isdigit():
            digits = "".join(ch for ch in parts[1:] if ch.isdigit())
            match = codons[(codons["gene"] == text("gene")) &
                           (codons["codon_id"] == f"{text('gene')}:{parts[0]}{digits}")]
            if len(match) == 1:
                codon = {str(k): v for k, v in match.iloc[0].to_dict().items()}
        return KnowledgeEntry(
            kb_id=kb_id, gene=text("gene"), alteration=parts,
            category=text("category"), evidence_label=text("evidence_label"),
            verified=text("evidence_label") != "recalled-unverified",
            citations=text("citations"), hgvs_c=text("hgvs_c"), hgvs_p=text("hgvs_p"),
            transcript=text("transcript"),
            aliases=tuple(a for a in text("aliases").split(";") if a),
            components=tuple(c for c in text("components").split(";") if c),
            notes=text("notes"), activity=activity, codon=codon,
        )

    def sources(self) -> list[dict[str, Any]]:
        """Every source with ``id, name, version, date, licence, url``."""
        return [dict(s) for s in self._data.manifest.get("sources", [])]

    def met_plasma_cn_tier(self, plasma_cn: float) -> str | None:
        """Guardant MET pCN tier: ``low``/``intermediate``/``high`` (PMC10552597); None < 2.1."""
        tier = None
        for t in self._data.manifest["cnv"]["met_plasma_cn_tiers"]:
            if "min" in t and plasma_cn >= float(t["min"]) - 1e-9:
                tier = t["name"]
            if "min_exclusive" in t and plasma_cn > float(t["min_exclusive"]):
                tier = t["name"]
        return tier


def default_knowledge_dir() -> Path:
    """Folder of the shipped knowledge base (``configs/knowledge``)."""
    return configs_dir() / "knowledge"


@lru_cache(maxsize=8)
def _load_cached(folder: str, overrides: str | None, stamp: str) -> KnowledgeBase:
    return KnowledgeBase(load_data(Path(folder), Path(overrides) if overrides else None))


def load_knowledge_base(path: str | Path | None = None,
                        overrides: str | Path | None = None) -> KnowledgeBase:
    """Load (cached per folder and override content) and validate the knowledge base.

    Parameters
    ----------
    path
        A knowledge-base folder; defaults to the shipped ``configs/knowledge``.
    overrides
        A lab override folder (:mod:`pipeline.knowledge.overrides`); None = shipped data only.

    Raises
    ------
    KnowledgeBaseError
        The data (or the override) are missing, inconsistent or fail the schema.
    """
    from pipeline.knowledge.overrides import override_fingerprint

    folder = Path(path) if path is not None else default_knowledge_dir()
    lab = Path(overrides).resolve() if overrides is not None else None
    # the cache key carries the override content hash: an edited override is reloaded
    stamp = override_fingerprint(lab) if lab is not None and lab.is_dir() else ""
    return _load_cached(str(folder.resolve()), str(lab) if lab else None, stamp)


def knowledge_base_for(settings: Any, path: str | Path | None = None) -> KnowledgeBase:
    """The knowledge base a run uses: shipped data + the lab override of ``settings``.

    ``settings.knowledge.overrides_dir`` (config, or env ``CTDNA_KB_OVERRIDES``) names the
    lab's override folder; absent means the shipped knowledge base only.
    """
    knowledge = getattr(settings, "knowledge", None)
    overrides = getattr(knowledge, "overrides_dir", None)
    return load_knowledge_base(path, overrides)
