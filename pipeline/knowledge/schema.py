"""Pydantic schema of the knowledge-base manifest (``configs/knowledge/manifest.yaml``).

Every key of the manifest is declared here and unknown keys are rejected (issue #13 item 5:
a typo in a curated file, or in a lab override, must fail loudly instead of being ignored).
The loader validates the *merged* mapping (shipped manifest + lab override), so a lab
correction obeys exactly the same schema as the shipped data.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Evidence labels. ``secondary`` = read in a secondary source only (trade press, company
#: summaries; kb-review-2026-12 "[V2]"): check the primary before hard-coding a number.
Label = Literal["verified", "secondary", "derived", "lifted", "recalled-unverified"]
LABELS: tuple[str, ...] = ("verified", "secondary", "derived", "lifted", "recalled-unverified")
Line = Literal["first_line", "after_prior_alk_tki"]
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_NCT_RE = re.compile(r"^NCT\d{8}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A public source; ``date`` = publication year or date, ``read_on`` = when it was read."""

    id: str
    name: str
    version: str
    date: str | None = None
    licence: str
    url: str | None = None
    read_on: str | None = Field(None, description="YYYY-MM-DD the public material was read")
    label: Label | None = Field(None, description="How far this source was checked")

    @field_validator("date", "read_on")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        if value is not None and not _DATE_RE.match(str(value)):
            raise ValueError(f"{value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
        return value


class GeneRule(_Strict):
    category: str
    transcript: str | None = None
    amplification: bool = False
    loss_of_function: bool = False
    class_label: Label
    citation: str


class Floor(_Strict):
    value: float
    label: Label
    citation: str


class Tier(_Strict):
    name: str
    min: float | None = None
    min_exclusive: float | None = None
    label: Label


class Cnv(_Strict):
    amplification_floor: dict[Literal["plasma_cn", "absolute_cn", "fold_change", "log2_ratio"],
                              Floor]
    met_plasma_cn_tiers: list[Tier]
    f1lcdx_amp_min_tumor_fraction: Floor
    loss_alterations: list[str]


class ExonRegion(_Strict):
    chrom: str
    exon_start: int
    exon_end: int
    acceptor: tuple[int, int]
    donor: tuple[int, int]
    window: tuple[int, int]


class MetExon14(_Strict):
    GRCh37: ExonRegion
    GRCh38: ExonRegion
    label: Label
    window_label: Label
    citation: str
    protein_aliases: list[str]


class Span(_Strict):
    chrom: str
    start: int
    end: int


class Partner(_Strict):
    GRCh37: tuple[str, int, int]
    GRCh38: tuple[str, int, int]
    label: Label
    citation: str


class Fusion(_Strict):
    alk_window: dict[Literal["GRCh37", "GRCh38"], Span]
    alk_window_label: Label
    alk_gene: dict[Literal["GRCh37", "GRCh38"], Span]
    partners: dict[str, Partner]
    other_fusion_categories: dict[str, str] = Field(default_factory=dict)


class RefWindow(_Strict):
    id: str
    build: Literal["GRCh37", "GRCh38"]
    chrom: str
    start: int
    sequence: str
    label: Label


class Indel(_Strict):
    kb_id: str
    GRCh37: tuple[str, int, str, str]
    GRCh38: tuple[str, int, str, str]


class Fact(_Strict):
    """A dated, sourced statement (a drug's regulatory status, a trial figure)."""

    text: str
    as_of: str | None = Field(None, description="YYYY-MM-DD the statement describes")
    label: Label
    source: str = Field(..., description="A source id of the manifest")


class Indication(_Strict):
    """Approved indication and line of an approved drug (issue #13 items 1-2).

    An ALK-inhibitor-naive patient (no ALK TKI in the therapy history) may receive a drug
    with ``first_line``; after an ALK TKI the drug needs ``after_prior_alk_tki`` and, when
    ``after_any_of`` is not empty, one of those drugs in the history.
    """

    text: str
    lines: list[Line]
    after_any_of: list[str] = Field(default_factory=list)
    approval: str = ""
    label: Label
    source: str


class Drug(_Strict):
    approved: bool
    generation: int | None = None
    aliases: list[str] = Field(default_factory=list)
    alk_tki: bool = Field(True, description="An ALK TKI (counts as prior ALK-TKI exposure)")
    indication: Indication | None = None
    status: Fact | None = None
    figures: list[Fact] = Field(default_factory=list)
    trial: str | None = Field(None, description="Trial id of the manifest's trials section")

    @model_validator(mode="after")
    def _approved_has_indication(self) -> Drug:
        if self.approved and self.indication is None:
            raise ValueError("an approved drug needs its indication (line) - issue #13")
        return self


class Trial(_Strict):
    """A clinical trial; ``nct_label`` says whether the identifier itself was checked."""

    name: str
    nct: str | None = None
    nct_label: Label
    status: str
    status_label: Label
    setting: str
    lines: list[Line] = Field(default_factory=list)
    source: str | None = None

    @field_validator("nct")
    @classmethod
    def _nct(cls, value: str | None) -> str | None:
        if value is not None and not _NCT_RE.match(value):
            raise ValueError(f"{value!r} is not an NCT identifier (NCT + 8 digits)")
        return value


class Strategy(_Strict):
    name: str
    kind: Literal["approved", "trial", "investigational", "procedure"]
    reference: str
    label: Label
    drug: str | None = None
    trial: str | None = None
    lines: list[Line] = Field(default_factory=list,
                              description="Empty = any line; else only in these lines")


class Compound(_Strict):
    phasing_note: str
    phasing_label: Label
    phasing_citation: str
    g1202r_class: list[str]
    i1171_class: list[str]
    class_label: Label
    class_citation: str
    i1171_note: str
    i1171_note_label: Label


class Manifest(_Strict):
    """The whole manifest (version ``YYYY.MM.PATCH``)."""

    version: str = Field(..., pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    released: str
    description: str
    files: dict[Literal["codons", "hotspot_alleles", "alterations", "activity"], str]
    labels: dict[Label, str]
    sources: list[Source]
    genes: dict[str, GeneRule]
    chip_genes: list[str]
    chip_label: Label
    chip_citation: str
    cnv: Cnv
    met_exon14: MetExon14
    fusion: Fusion
    ref_windows: list[RefWindow]
    indels: list[Indel]
    drugs: dict[str, Drug]
    drugs_label: Label
    drugs_citation: str
    trials: dict[str, Trial] = Field(default_factory=dict)
    strategies: dict[str, list[Strategy]]
    strategy_by_gene: dict[str, list[str]]
    compound: Compound

    @model_validator(mode="after")
    def _references(self) -> Manifest:
        # Cross-references must resolve, so that every fact can be traced to its source.
        ids = {s.id for s in self.sources}
        dup = sorted({s.id for s in self.sources if [t.id for t in self.sources].count(s.id) > 1})
        if dup:
            raise ValueError(f"duplicate source ids {dup}")
        self._check_drug_references(ids)
        for tid, trial in self.trials.items():
            if trial.source and trial.source not in ids:
                raise ValueError(f"trials.{tid}: unknown source {trial.source!r}")
        for key, items in self.strategies.items():
            for s in items:
                if s.trial and s.trial not in self.trials:
                    raise ValueError(f"strategies.{key}: unknown trial {s.trial!r}")
                if s.drug and s.drug not in self.drugs:
                    raise ValueError(f"strategies.{key}: unknown drug {s.drug!r}")
        for gene, keys in self.strategy_by_gene.items():
            missing = set(keys) - set(self.strategies)
            if missing:
                raise ValueError(f"strategy_by_gene.{gene}: unknown strategies {sorted(missing)}")
        return self

    def _check_drug_references(self, ids: set[str]) -> None:
        """Each drug's facts cite known sources, its trial and prior drugs exist."""
        for name, drug in self.drugs.items():
            facts = [f for f in (drug.status, drug.indication, *drug.figures) if f is not None]
            for fact in facts:
                if fact.source not in ids:
                    raise ValueError(f"drugs.{name}: unknown source {fact.source!r}")
            if drug.trial and drug.trial not in self.trials:
                raise ValueError(f"drugs.{name}: unknown trial {drug.trial!r}")
            if drug.indication:
                unknown = set(drug.indication.after_any_of) - set(self.drugs)
                if unknown:
                    raise ValueError(f"drugs.{name}.indication: unknown drugs {sorted(unknown)}")

    @field_validator("chip_genes")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [str(g).strip().upper() for g in value]
