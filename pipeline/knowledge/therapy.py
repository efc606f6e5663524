"""Therapy options for a set of recognised alterations (alk-knowledge.md 2.1-2.3, 3.3).

Options are suggestions for an early-switch review by a clinician, never an automatic change of
therapy. Every option carries its reference and whether the supporting claim is verified; an
advice is ``unverified`` as soon as one option or note rests on a recalled/unverified claim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.assessment import TherapyOption
from pipeline.knowledge.data import ActivityCell, KnowledgeData, canonical_compound
from pipeline.knowledge.sequence import split_short

_UNVERIFIED = "recalled-unverified"


@dataclass
class TherapyAdvice:
    """What the knowledge base suggests for a set of alterations.

    Attributes
    ----------
    options
        Therapy options (approved TKIs, trials, investigational combinations, procedures).
    notes
        Plain-language caveats (phasing, activity of the current drug, class notes).
    unverified
        True when any option or note relies on a claim labelled recalled-unverified.
    citations
        Every reference used, de-duplicated, in order of first use.
    alk_history
        ALK TKIs in the therapy history used for the indication check (issue #13).
    """

    options: list[TherapyOption] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unverified: bool = False
    citations: list[str] = field(default_factory=list)
    #: ALK TKIs of the therapy history (earlier lines + current drug) the indication check used
    alk_history: list[str] = field(default_factory=list)

    def _cite(self, ref: str) -> None:
        if ref and ref not in self.citations:
            self.citations.append(ref)

    def add_option(self, option: TherapyOption) -> None:
        """Add an option once (by name and kind), tracking citations and verification."""
        if any(o.name == option.name and o.kind == option.kind for o in self.options):
            return
        self.options.append(option)
        self._cite(option.reference)
        if not option.verified:
            self.unverified = True

    def add_note(self, note: str, citation: str = "", verified: bool = True) -> None:
        """Add a note once; an unverified note marks the advice unverified."""
        text = note if verified else f"{note} [unverified]"
        if text not in self.notes:
            self.notes.append(text)
        self._cite(citation)
        if not verified:
            self.unverified = True


class TherapyAdvisor:
    """Implements :meth:`KnowledgeBase.therapy_options` on loaded data."""

    def __init__(self, data: KnowledgeData) -> None:
        self.data = data
        self.drugs = data.manifest["drugs"]
        self.alias = {d: d for d in self.drugs}
        for name, spec in self.drugs.items():
            for a in spec.get("aliases", []):
                self.alias[str(a).lower()] = name
        act = data.activity
        cells = (ActivityCell(*t) for t in
                 act[list(ActivityCell._fields)].itertuples(index=False, name=None))
        self.activity: dict[tuple[str, str], ActivityCell] = {(c.kb_id, c.drug): c for c in cells}
        self.strategies = data.manifest["strategies"]

    def drug_name(self, drug: str | None) -> str | None:
        """Canonical drug name (``Alecensa`` -> ``alectinib``; ``NVL-655`` -> ``neladalkib``)."""
        if drug is None:
            return None
        key = str(drug).strip().lower()
        return self.alias.get(key, key)

    def _kb_id(self, gene: str, alteration: str) -> str | None:
        return self.data.alias_index.get(f"{gene.upper()}:{alteration.strip().upper()}")

    # -----------------------------------------------------------------------------------
    def alk_exposure(self, current: str | None, prior_drugs: Iterable[str] | None) -> list[str]:
        """ALK TKIs in the therapy history (earlier lines + the current drug), canonical."""
        names = [str(self.drug_name(d)) for d in [*(prior_drugs or []), current] if d]
        return list(dict.fromkeys(n for n in names if n in self.drugs
                                  and self.drugs[n].get("alk_tki", True)))

    def on_label(self, drug: str, exposed: list[str]) -> bool:
        """Whether ``drug``'s approved indication covers a patient with this ALK-TKI history."""
        ind = self.drugs[drug].get("indication") or {}
        lines = ind.get("lines", [])
        if not exposed:
            return "first_line" in lines
        after = set(ind.get("after_any_of", []))
        return "after_prior_alk_tki" in lines and (not after or bool(after & set(exposed)))

    def _line_ok(self, spec: dict, exposed: list[str]) -> bool:
        lines = spec.get("lines") or []
        return not lines or ("after_prior_alk_tki" if exposed else "first_line") in lines

    def advise(self, alterations: list[tuple[str, str]], current_drug: str | None, *,
               prior_drugs: Iterable[str] | None = None,
               line: int | None = None) -> TherapyAdvice:
        advice = TherapyAdvice()
        current = self.drug_name(current_drug)
        advice.alk_history = self.alk_exposure(current, prior_drugs)
        if advice.alk_history:
            advice.add_note("Indication check: prior ALK TKIs " + ", ".join(advice.alk_history)
                            + "; options follow each drug's approved line.")
        else:
            advice.add_note("Indication check: no ALK TKI in the therapy history "
                            "(ALK-inhibitor-naive); first-line indications apply.")
        if line is not None and line > 1 and prior_drugs is None:
            advice.add_note(f"Line {line} but no earlier drug was given: the indication check "
                            "assumes only the current drug; complete the therapy history.")
        alk: list[str] = []
        others: list[tuple[str, str, str | None]] = []
        for gene, alteration in alterations:
            if not gene or not alteration:
                continue
            g = gene.strip().upper()
            a = alteration.strip()
            kb_id = self._kb_id(g, a)
            if g == "ALK" and kb_id and self.data.text(kb_id, "category") == "alk_resistance":
                comps = self.data.text(kb_id, "components")
                alk.extend(comps.split(";") if comps else [self.data.text(kb_id, "alteration")])
            elif g == "ALK" and "fusion" in a.lower():
                continue  # the driver itself: no resistance implication
            else:
                others.append((g, a, kb_id))
        alk = list(dict.fromkeys(alk))
        if len(alk) == 1:
            self._single(alk[0], current, advice)
        elif len(alk) >= 2:
            self._compound(alk, current, advice)
        for g, a, kb_id in others:
            self._bypass(g, a, kb_id, advice)
        if not alk and not others:
            advice.add_note("No resistance alteration in the knowledge base among the findings.")
        if current and any(o.name == current for o in advice.options):
            advice.options = [o for o in advice.options if o.name != current]
        return advice

    # -----------------------------------------------------------------------------------
    def _cell(self, kb_id: str, drug: str) -> tuple[str, str, str, str]:
        row = self.activity.get((kb_id, drug))
        if row is None:
            return "unknown", "-", _UNVERIFIED, ""
        return row.activity, row.reported, row.evidence_label, row.citation

    def _approved_sensitive(self, kb_id: str, name: str, current: str | None,
                            advice: TherapyAdvice) -> list[str]:
        chosen = []
        for drug, spec in self.drugs.items():
            activity, reported, label, citation = self._cell(kb_id, drug)
            if drug == current:
                advice.add_note(
                    f"{name}: current drug {drug} activity {activity} (reported {reported}).",
                    citation, label != _UNVERIFIED)
            if not spec.get("approved"):
                continue
            if activity == "S" and not self.on_label(drug, advice.alk_history):
                if drug != current:
                    self._off_label_note(drug, name, label, advice)
            elif activity == "S":
                chosen.append(drug)
                if drug != current:
                    self._approved_option(drug, citation, f"{name}: {activity} ({label})",
                                          label != _UNVERIFIED, advice)
            elif activity in ("R", "I") and drug != current:
                advice.add_note(f"{name}: {drug} {activity} (reported {reported}); not suggested.",
                                citation, label != _UNVERIFIED)
        return chosen

    def _indication(self, drug: str) -> tuple[str, str, bool]:
        ind = self.drugs[drug].get("indication") or {}
        label = ind.get("label", _UNVERIFIED)
        return ind.get("text", "indication not recorded"), label, label != _UNVERIFIED

    def _approved_option(self, drug: str, reference: str, level: str, verified: bool,
                         advice: TherapyAdvice) -> None:
        text, label, ind_verified = self._indication(drug)
        advice.add_option(TherapyOption(
            name=drug, kind="approved", reference=reference,
            evidence_level=f"{level}; indication: {text} [{label}]",
            verified=verified and ind_verified))

    def _off_label_note(self, drug: str, name: str, label: str, advice: TherapyAdvice) -> None:
        text, ind_label, ind_verified = self._indication(drug)
        history = ", ".join(advice.alk_history) or "none"
        advice.add_note(f"{name}: {drug} active (S, {label}) but outside its approved indication "
                        f"({text} [{ind_label}]) for prior ALK TKIs: {history}; not offered as an "
                        "approved option.",
                        self.drugs[drug].get("indication", {}).get("source", ""),
                        ind_verified and label != _UNVERIFIED)

    def _single(self, mutation: str, current: str | None, advice: TherapyAdvice) -> None:
        kb_id = self._kb_id("ALK", mutation)
        if kb_id is None:
            return
        chosen = self._approved_sensitive(kb_id, f"ALK {mutation}", current, advice)
        for drug in ("neladalkib", "zotizalkib"):
            activity, reported, label, _citation = self._cell(kb_id, drug)
            if activity == "S":
                self._fourth_gen(drug, f"ALK {mutation}: {reported}", advice, label)
        if not chosen:
            advice.add_note(f"ALK {mutation}: no approved ALK TKI with recorded activity S.")
            self._rebiopsy(advice)

    def _fourth_gen(self, drug: str, why: str, advice: TherapyAdvice,
                    cell_label: str = "verified") -> None:
        keys = ("fourth_generation_g1202r", "first_line_trials")
        for s in (s for k in keys for s in self.strategies.get(k, [])):
            if s.get("drug") == drug and self._line_ok(s, advice.alk_history):
                advice.add_option(TherapyOption(
                    name=s["name"], kind=s["kind"], reference=s["reference"],
                    evidence_level=f"{why} [activity {cell_label}; trial {s['label']}]",
                    verified=s["label"] != _UNVERIFIED and cell_label != _UNVERIFIED))
        status = self.drugs.get(drug, {}).get("status")
        if status:
            advice.add_note(f"{drug}: {status['text']} [{status['label']}]", status["source"],
                            status["label"] != _UNVERIFIED)

    def _rebiopsy(self, advice: TherapyAdvice) -> None:
        for s in self.strategies["rebiopsy"]:
            advice.add_option(TherapyOption(name=s["name"], kind=s["kind"],
                                            reference=s["reference"],
                                            verified=s["label"] != _UNVERIFIED))

    def _compound(self, mutations: list[str], current: str | None,
                  advice: TherapyAdvice) -> None:
        comp = self.data.manifest["compound"]
        advice.add_note(" ".join(str(comp["phasing_note"]).split()), comp["phasing_citation"],
                        comp.get("phasing_label") != _UNVERIFIED)
        g1202 = [m for m in mutations if m in comp["g1202r_class"]]
        i1171 = [m for m in mutations if m in comp["i1171_class"]]
        if g1202:
            advice.add_note("G1202R-based compound class (Shiba-Ishii 2022).",
                            comp["class_citation"], comp["class_label"] != _UNVERIFIED)
        if i1171:
            advice.add_note(f"I1171-based compound class ({', '.join(i1171)}; Shiba-Ishii 2022).",
                            comp["class_citation"], comp["class_label"] != _UNVERIFIED)
            advice.add_note(" ".join(str(comp["i1171_note"]).split()), comp["class_citation"],
                            comp.get("i1171_note_label") != _UNVERIFIED)
        name = canonical_compound(mutations)
        kb_id = self._kb_id("ALK", name)
        chosen: list[str] = []
        if kb_id is not None:
            chosen = self._approved_sensitive(kb_id, f"ALK {name} (if cis)", current, advice)
            for drug in ("neladalkib", "zotizalkib"):
                activity, reported, label, _citation = self._cell(kb_id, drug)
                if activity == "S":
                    self._fourth_gen(drug, f"ALK {name}: {reported}", advice, label)
        else:
            advice.add_note(f"ALK {name}: activity of this combination as a cis compound is not "
                            "in the knowledge base.", verified=True)
        # if the mutations are in trans (polyclonal), a TKI must cover every component
        per = []
        for m in mutations:
            mid = self._kb_id("ALK", m)
            per.append({d for d in self.drugs if self.drugs[d].get("approved")
                        and self.on_label(d, advice.alk_history)
                        and mid is not None and self._cell(mid, d)[0] == "S"})
        cover = set.intersection(*per) if per else set()
        if cover:
            labels = []
            for drug in sorted(cover):
                verified = all(self._cell(self._kb_id("ALK", m) or "", drug)[2] != _UNVERIFIED
                               for m in mutations)
                labels.append(drug)
                if drug != current and kb_id is None:
                    self._approved_option(
                        drug, "alk-knowledge.md 2.1 (per-mutation activity)",
                        f"covers each of {', '.join(mutations)} if polyclonal "
                        "(trans); compound activity unknown", verified, advice)
            advice.add_note(f"If polyclonal (trans), approved TKIs active against every component: "
                            f"{', '.join(labels)}.", "alk-knowledge.md 2.1",
                            verified=all(o.verified for o in advice.options
                                         if o.name in cover))
        if i1171 and kb_id is not None and self._cell(kb_id, "gilteritinib")[0] == "S":
            for s in self.strategies.get("i1171_compound", []):
                advice.add_option(TherapyOption(
                    name=s["name"], kind=s["kind"], reference=s["reference"],
                    evidence_level=f"ALK {name}: {self._cell(kb_id, 'gilteritinib')[1]}",
                    verified=s["label"] != _UNVERIFIED))
        if g1202 and kb_id is None:
            for drug in ("neladalkib", "zotizalkib"):
                self._fourth_gen(drug, "G1202R-based compound (design intent, Ou 2021)", advice,
                                 _UNVERIFIED)
        if not chosen:
            advice.add_note(f"ALK {name}: no approved ALK TKI is recorded as active against "
                            "this compound; consider trials and tissue re-biopsy.")
            self._rebiopsy(advice)

    def _bypass(self, gene: str, alteration: str, kb_id: str | None,
                advice: TherapyAdvice) -> None:
        key = None
        a = alteration.lower()
        if gene == "MET" and "amplification" in a:
            key = "MET:amplification"
        elif gene == "MET" and ("exon 14" in a or "ex14" in a):
            key = "MET:exon14_skipping"
        keys = [key] if key else list(self.data.manifest["strategy_by_gene"].get(gene, []))
        if gene == "BRAF":
            parts = split_short(alteration)
            if not parts or parts[1] != 600:
                keys = []  # the BRAF + MEK evidence is for V600E only (alk-knowledge.md 3.3)
        category = self.data.text(kb_id, "category") if kb_id else None
        if category == "chip" or gene in {g.upper() for g in
                                          self.data.manifest.get("chip_genes", [])}:
            advice.add_note(f"{gene} {alteration}: clonal haematopoiesis gene; not a tumour "
                            "resistance finding.")
            return
        if not keys:
            if kb_id:
                advice.add_note(f"{gene} {alteration}: in the knowledge base ({category}) but no "
                                "strategy is recorded.")
            return
        label = self.data.text(kb_id, "evidence_label") if kb_id else _UNVERIFIED
        advice.add_note(f"{gene} {alteration}: {category or 'unrecognised'} alteration; "
                        "ALK-independent resistance is possible.",
                        self.data.text(kb_id, "citations") if kb_id else "",
                        label != _UNVERIFIED)
        for k in keys:
            for s in self.strategies[k]:
                if not self._line_ok(s, advice.alk_history):
                    continue
                advice.add_option(TherapyOption(name=s["name"], kind=s["kind"],
                                                reference=s["reference"],
                                                evidence_level=f"{gene} {alteration}",
                                                verified=s["label"] != _UNVERIFIED))
        if category == "transformation" or gene in ("TP53", "RB1"):
            self._rebiopsy(advice)
