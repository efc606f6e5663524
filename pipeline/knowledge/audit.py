"""``ctdna kb audit`` and ``ctdna kb show``: what the knowledge base claims, and how well.

The audit lists, for a curator (issue #13 item 4):

* every item labelled ``recalled-unverified`` (entries, activity cells, strategies, trials,
  drug statuses/indications/figures, gene classes, CNV floors, partner spans, notes);
* every item resting on a secondary source only (``secondary``);
* trials whose identifier was not checked (``nct_label`` other than ``verified``);
* undated sources (no ``date``), and sources published more than ``max_age_years`` before
  the KB release.

Items are plain dicts (``kind``, ``id``, ``label``, ``detail``) so the CLI prints them as
text or JSON unchanged.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pipeline.knowledge import KnowledgeBase

UNVERIFIED = "recalled-unverified"


def _item(kind: str, ident: str, label: str, detail: str) -> dict[str, str]:
    return {"kind": kind, "id": ident, "label": label, "detail": detail}


def labelled_items(kb: KnowledgeBase) -> list[dict[str, str]]:
    """Every labelled claim of the knowledge base (one row per claim)."""
    m = kb.data.manifest
    items: list[dict[str, str]] = []
    for r in kb.data.entries.to_dict("records"):
        items.append(_item("entry", str(r["kb_id"]), str(r["evidence_label"]),
                           str(r["citations"])))
    for r in kb.data.activity.to_dict("records"):
        items.append(_item("activity", f"{r['kb_id']} {r['drug']}", str(r["evidence_label"]),
                           f"{r['activity']} ({r['reported']}); {r['citation']}"))
    for gene, rule in m["genes"].items():
        items.append(_item("gene_class", gene, rule["class_label"], rule["citation"]))
    items.append(_item("chip_genes", "chip_genes", m["chip_label"], m["chip_citation"]))
    for kind, floor in m["cnv"]["amplification_floor"].items():
        items.append(_item("cnv_floor", kind, floor["label"], floor["citation"]))
    for name, p in m["fusion"]["partners"].items():
        items.append(_item("fusion_partner", name, p["label"], p["citation"]))
    for name, drug in m["drugs"].items():
        if drug.get("indication"):
            ind = drug["indication"]
            items.append(_item("indication", name, ind["label"], ind["text"]))
        if drug.get("status"):
            items.append(_item("drug_status", name, drug["status"]["label"],
                               drug["status"]["text"]))
        for i, fig in enumerate(drug.get("figures", [])):
            items.append(_item("figure", f"{name}#{i + 1}", fig["label"], fig["text"]))
    for tid, trial in m.get("trials", {}).items():
        items.append(_item("trial_status", tid, trial["status_label"], trial["status"]))
    for key, strategies in m["strategies"].items():
        for s in strategies:
            items.append(_item("strategy", f"{key}: {s['name']}", s["label"], s["reference"]))
    for s in m["sources"]:
        if s.get("label"):
            items.append(_item("source", s["id"], s["label"], s["name"]))
    comp = m["compound"]
    items.append(_item("note", "compound phasing", comp["phasing_label"],
                       comp["phasing_citation"]))
    items.append(_item("note", "compound classes", comp["class_label"], comp["class_citation"]))
    items.append(_item("note", "I1171-based compound", comp["i1171_note_label"],
                       " ".join(str(comp["i1171_note"]).split())))
    return items


def audit(kb: KnowledgeBase, max_age_years: int = 5,
          today: date | None = None) -> dict[str, Any]:
    """The curator's audit of ``kb``.

    Parameters
    ----------
    kb
        A loaded knowledge base (with or without lab override).
    max_age_years
        Sources published more than this many years before the KB release are listed.
    today
        Reference date for the age check (default: the KB ``released`` date).

    Returns
    -------
    dict
        ``kb_version``, ``unverified``, ``secondary``, ``trials_unchecked``,
        ``undated_sources``, ``old_sources`` (lists of items) and ``counts``.
    """
    m = kb.data.manifest
    ref = today or date.fromisoformat(str(m["released"]))
    items = labelled_items(kb)
    trials = [
        _item("trial", tid, t["nct_label"], f"{t['nct'] or 'no identifier'}: {t['name']}")
        for tid, t in m.get("trials", {}).items() if t["nct_label"] != "verified" or not t["nct"]
    ]
    undated, old = [], []
    for s in m["sources"]:
        label = s.get("label") or ""
        if not s.get("date"):
            undated.append(_item("source", s["id"], label, s["name"]))
        elif ref.year - int(str(s["date"])[:4]) > max_age_years:
            old.append(_item("source", s["id"], label, f"{s['date']}: {s['name']}"))
    result = {
        "kb_version": kb.version,
        "max_source_age_years": max_age_years,
        "unverified": [i for i in items if i["label"] == UNVERIFIED],
        "secondary": [i for i in items if i["label"] == "secondary"],
        "trials_unchecked": trials,
        "undated_sources": undated,
        "old_sources": old,
    }
    result["counts"] = {k: len(v) for k, v in result.items() if isinstance(v, list)}
    return result


def show(kb: KnowledgeBase, alteration: str) -> dict[str, Any]:
    """What the knowledge base says about one alteration.

    ``alteration`` is a kb_id (``ALK:G1202R``), ``GENE ALTERATION`` / ``GENE:ALTERATION``
    (``ALK L1196M+G1202R``), or an ALK short name (``G1202R``).

    Raises
    ------
    NotFoundError
        The alteration is not in this knowledge-base version.
    """
    from pipeline.errors import NotFoundError
    from pipeline.knowledge.data import canonical_compound

    text = alteration.strip().replace(" ", ":", 1)
    gene, _, name = text.partition(":") if ":" in text else ("ALK", "", text)
    if "+" in name:
        name = canonical_compound(name.split("+"))
    kb_id = (text if text in kb.data.entries.index
             else kb.data.alias_index.get(f"{gene.upper()}:{name.upper()}"))
    if kb_id is None:
        raise NotFoundError(f"{alteration!r} is not in knowledge base {kb.version}",
                            field="ALTERATION")
    entry = kb.entry(kb_id)
    advice = kb.therapy_options([(entry.gene, entry.alteration)], None)
    after = kb.therapy_options([(entry.gene, entry.alteration)], None,
                               prior_drugs=["alectinib"]) if entry.gene == "ALK" else None
    drugs = kb.data.manifest["drugs"]

    def options(a: Any) -> list[dict[str, Any]]:
        return [o.model_dump() for o in a.options]

    return {
        "kb_version": kb.version,
        "kb_id": kb_id, "gene": entry.gene, "alteration": entry.alteration,
        "category": entry.category, "evidence_label": entry.evidence_label,
        "citations": entry.citations, "hgvs_c": entry.hgvs_c, "hgvs_p": entry.hgvs_p,
        "components": list(entry.components), "notes": entry.notes,
        "activity": [
            {"drug": d, **cell, "approved": bool(drugs.get(d, {}).get("approved")),
             "indication": (drugs.get(d, {}).get("indication") or {}).get("text")}
            for d, cell in entry.activity.items()
        ],
        "options_first_line": options(advice),
        "options_after_alectinib": options(after) if after is not None else None,
        "notes_first_line": advice.notes,
    }
