"""KB 2026.12 (issue #13): each correction pinned with its source and label, the
indication-aware options, the CHIP list, the audit and the lab override layer."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import load_settings
from pipeline.errors import KnowledgeBaseError
from pipeline.knowledge import knowledge_base_for, load_knowledge_base
from pipeline.knowledge.audit import audit, show

from .conftest import make_calls

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "knowledge"


def _names(advice, kind=None):
    return [o.name for o in advice.options if kind is None or o.kind == kind]


def _source(kb, sid):
    return next(s for s in kb.sources() if s["id"] == sid)


# ------------------------------------------------------------------ item 1: corrections


def test_version_is_2026_12(kb):
    assert kb.version == kb.base_version == "2026.12.0"


def test_neladalkib_status_and_alkove1_figures_are_secondary_with_sources(kb):
    drug = kb.data.manifest["drugs"]["neladalkib"]
    assert drug["approved"] is False
    status = drug["status"]
    assert "Priority Review" in status["text"] and "2026-11-27" in status["text"]
    assert "NOT confirmed" in status["text"] and status["label"] == "secondary"
    figures = " | ".join(f["text"] for f in drug["figures"])
    for needed in ("ORR 31 % in 253", "91 % had prior lorlatinib", "46 % in 63 lorlatinib-naive",
                   "~49 % with ALK mutations after lorlatinib", "~70 % in G1202R - a phase-1"):
        assert needed in figures
    assert all(f["label"] == "secondary" for f in drug["figures"])
    src = _source(kb, status["source"])
    assert src["label"] == "secondary" and "2026-11-27" in src["name"]
    assert kb.data.manifest["trials"]["ALKOVE-1"]["nct"] == "NCT05384626"
    # never an approved option; the status note travels with the trial option
    advice = kb.therapy_options([("ALK", "G1202R")], "lorlatinib", prior_drugs=["alectinib"])
    assert "neladalkib" not in _names(advice, "approved")
    assert any("Priority Review" in n and "[secondary]" in n for n in advice.notes)
    nela = next(o for o in advice.options if o.name.startswith("neladalkib"))
    assert nela.kind == "trial" and "ORR 31 % in 253 pretreated" in nela.reference
    assert nela.verified is False  # the G1202R activity cell is still recalled-unverified


def test_ensartinib_first_line_only(kb):
    ind = kb.data.manifest["drugs"]["ensartinib"]["indication"]
    assert ind["lines"] == ["first_line"] and ind["label"] == "secondary"
    assert _source(kb, ind["source"])["date"] == "2024-12-18"
    naive = kb.therapy_options([("ALK", "L1196M")], None)
    assert "ensartinib" in _names(naive, "approved")
    for history in (["crizotinib"], ["alectinib"]):
        after = kb.therapy_options([("ALK", "L1196M")], history[-1], prior_drugs=history[:-1])
        assert "ensartinib" not in _names(after, "approved")
        assert any("ensartinib active" in n and "outside its approved indication" in n
                   for n in after.notes)


def test_lorlatinib_after_second_generation_and_line_history(kb):
    # after alectinib: lorlatinib only (brigatinib/ceritinib: after crizotinib only)
    after_alec = kb.therapy_options([("ALK", "L1196M")], "alectinib")
    assert _names(after_alec, "approved") == ["lorlatinib"]
    # after crizotinib then (current) brigatinib: lorlatinib on label via brigatinib
    seq = kb.therapy_options([("ALK", "G1202R")], "brigatinib", prior_drugs=["crizotinib"])
    assert seq.alk_history == ["crizotinib", "brigatinib"]
    assert _names(seq, "approved") == ["lorlatinib"]
    # chemotherapy in the history does not count as ALK-TKI exposure
    chemo = kb.therapy_options([("ALK", "L1196M")], None, prior_drugs=["carboplatin"])
    assert chemo.alk_history == [] and "ensartinib" in _names(chemo, "approved")


def test_alkazar_identifier_first_line_only(kb):
    trial = kb.data.manifest["trials"]["ALKAZAR"]
    assert trial["nct"] == "NCT06765109" and trial["nct_label"] == "verified"
    assert "TPS8666" in _source(kb, trial["source"])["name"]
    naive = kb.therapy_options([("ALK", "G1202R")], None)
    assert any("NCT06765109" in n for n in _names(naive, "trial"))
    pretreated = kb.therapy_options([("ALK", "G1202R")], "alectinib")
    assert not any("ALKAZAR" in n for n in _names(pretreated))


def test_unconfirmed_trials_and_forge1(kb):
    trials = kb.data.manifest["trials"]
    for nct in ("NCT04292119", "NCT03202940", "NCT04005144"):
        assert trials[nct]["nct_label"] == "recalled-unverified"
        assert "not confirmed" in trials[nct]["status"]
    assert trials["FORGE-1"]["status_label"] == "recalled-unverified"
    assert "unknown" in trials["FORGE-1"]["status"]
    mapk = kb.therapy_options([("KRAS", "G12C")], "alectinib")
    unconfirmed = [o for o in mapk.options if "UNCONFIRMED" in o.name]
    assert len(unconfirmed) == 2 and not any(o.verified for o in unconfirmed)


def test_compound_labels(kb):
    act = kb.entry("ALK:L1196M+G1202R").activity
    for drug in ("neladalkib", "zotizalkib"):
        assert act[drug]["evidence_label"] == "recalled-unverified"
        assert "design" in act[drug]["citation"] and "not measured" in act[drug]["citation"]
    for kb_id in ("ALK:I1171N+F1174I", "ALK:I1171N+L1198H"):
        entry = kb.entry(kb_id)
        assert "Mizuta" in entry.citations and "1261" in entry.citations
        for drug, spec in kb.data.manifest["drugs"].items():
            if spec["approved"]:
                assert entry.activity[drug]["activity"] == "R", (kb_id, drug)
        assert entry.activity["gilteritinib"]["activity"] == "S"
        assert "preclinical" in entry.activity["gilteritinib"]["reported"]
        a, b = entry.components
        advice = kb.therapy_options([("ALK", a), ("ALK", b)], "lorlatinib",
                                    prior_drugs=["alectinib"])
        assert _names(advice, "approved") == []
        assert any(n.startswith("gilteritinib") for n in _names(advice, "investigational"))
        assert "tissue re-biopsy" in _names(advice, "procedure")
    assert _source(kb, "mizuta2021")["label"] == "verified"


def test_chip_additions_and_single_source(kb):
    for gene in ("IDH1", "IDH2", "MPL", "SF3B1", "SRSF2", "U2AF1", "CBL"):
        assert gene in kb.chip_genes
    assert load_settings(env={}).rules.chip_genes == ()  # config only ADDS lab genes
    calls = make_calls([{"gene": "IDH1", "protein_change": "R132H", "variant_type": "SNV",
                         "vaf": 0.24}])
    assert kb.annotate(calls, "GRCh38")["category"].tolist() == ["chip"]
    stale = pd.DataFrame({"gene": ["IDH2", "ALK"], "category": ["other", "alk_resistance"]})
    assert kb.mark_chip(stale)["category"].tolist() == ["chip", "alk_resistance"]


def test_approved_drugs_carry_indication_and_line(kb):
    for name, drug in kb.data.manifest["drugs"].items():
        if drug["approved"]:
            assert drug["indication"]["lines"], name
            assert drug["indication"]["label"] in ("verified", "secondary", "recalled-unverified")


# ------------------------------------------------------------------ item 4: audit / show


def _raw_unverified() -> set[tuple[str, str]]:
    """Independent count from the raw files: every recalled-unverified label."""
    alt = pd.read_csv(SHIPPED / "alterations.tsv", sep="\t", comment="#", dtype=str)
    act = pd.read_csv(SHIPPED / "activity.tsv", sep="\t", comment="#", dtype=str)
    m = yaml.safe_load((SHIPPED / "manifest.yaml").read_text())
    u = "recalled-unverified"
    out = {("entry", k) for k in alt.loc[alt["evidence_label"] == u, "kb_id"]}
    out |= {("activity", f"{r.kb_id} {r.drug}") for r in act.itertuples()
            if r.evidence_label == u}
    out |= {("trial_status", k) for k, t in m["trials"].items() if t["status_label"] == u}
    out |= {("strategy", f"{k}: {s['name']}") for k, v in m["strategies"].items() for s in v
            if s["label"] == u}
    out |= {("indication", k) for k, d in m["drugs"].items()
            if d.get("indication", {}).get("label") == u}
    out |= {("drug_status", k) for k, d in m["drugs"].items()
            if d.get("status", {}).get("label") == u}
    out |= {("gene_class", g) for g, r in m["genes"].items() if r["class_label"] == u}
    out |= {("fusion_partner", p) for p, r in m["fusion"]["partners"].items() if r["label"] == u}
    out |= {("cnv_floor", k) for k, r in m["cnv"]["amplification_floor"].items()
            if r["label"] == u}
    out |= {("source", s["id"]) for s in m["sources"] if s.get("label") == u}
    comp = m["compound"]
    out |= {("note", n) for n, lab in (("compound phasing", comp["phasing_label"]),
                                       ("compound classes", comp["class_label"]),
                                       ("I1171-based compound", comp["i1171_note_label"]))
            if lab == u}
    return out


def test_audit_lists_exactly_the_unverified_items(kb):
    result = audit(kb, max_age_years=5)
    listed = [(i["kind"], i["id"]) for i in result["unverified"]]
    generated = {(k, i) for k, i in listed
                 if k == "entry" and i not in set(pd.read_csv(
                     SHIPPED / "alterations.tsv", sep="\t", comment="#")["kb_id"])}
    assert len(listed) == len(set(listed))
    # generated entries (hotspots of recalled bypass classes) come from the gene classes
    assert all(kb.data.manifest["genes"][i.split(":")[0]]["class_label"] == "recalled-unverified"
               for _, i in generated)
    assert set(listed) - generated == _raw_unverified()
    assert all(i["label"] == "recalled-unverified" for i in result["unverified"])
    trials = {i["id"] for i in result["trials_unchecked"]}
    assert {"NCT04292119", "NCT03202940", "NCT04005144", "FORGE-1"} <= trials
    assert "ALKAZAR" not in trials and "NCT04800822" not in trials
    assert "quantexonjunction" in {i["id"] for i in result["undated_sources"]}
    assert "sasaki2011" in {i["id"] for i in result["old_sources"]}
    assert "alkazar_tps8666" not in {i["id"] for i in result["old_sources"]}
    assert {("figure", "neladalkib#1"), ("drug_status", "neladalkib")} <= {
        (i["kind"], i["id"]) for i in result["secondary"]}


def test_show_compound_any_spelling(kb):
    a = show(kb, "ALK G1202R+L1196M")
    b = show(kb, "L1196M+G1202R")
    assert a["kb_id"] == b["kb_id"] == "ALK:L1196M+G1202R"
    cells = {c["drug"]: c for c in a["activity"]}
    assert cells["neladalkib"]["evidence_label"] == "recalled-unverified"
    assert cells["ensartinib"]["indication"].endswith("(first line only; eXALT3)")
    assert a["options_after_alectinib"] is not None


# ------------------------------------------------------------------ item 5: override layer


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.read_bytes())
    return h.hexdigest()


def _override(tmp_path: Path, manifest: dict | None = None, activity: str | None = None,
              **extra: object) -> Path:
    folder = tmp_path / "lab-kb"
    folder.mkdir(exist_ok=True)
    spec = {"lab": "Example lab", "curator": "Dr Curator", "reviewed_on": "2026-12-03",
            "reason": "US labels: lorlatinib after any ALK TKI", "manifest": manifest or {},
            **extra}
    (folder / "override.yaml").write_text(yaml.safe_dump(spec))
    if activity is not None:
        (folder / "activity.tsv").write_text(
            "kb_id\tdrug\tactivity\treported\tevidence_label\tcitation\n" + activity)
    return folder


def test_override_changes_recommendation_and_version(tmp_path):
    before = _digest(SHIPPED)
    folder = _override(
        tmp_path,
        manifest={"drugs": {"brigatinib": {"indication": {"after_any_of": []}}},
                  "chip_genes": ["DNMT3A", "TET2"]},
        activity="ALK:G1202R\tbrigatinib\tS\tS (lab data)\tverified\tLab validation 2026\n")
    lab = load_knowledge_base(overrides=folder)
    shipped = load_knowledge_base()
    assert lab.version.startswith("2026.12.0+lab.") and len(lab.version.split("+lab.")[1]) == 8
    assert lab.base_version == "2026.12.0" and shipped.version == "2026.12.0"
    old = shipped.therapy_options([("ALK", "G1202R")], "alectinib")
    new = lab.therapy_options([("ALK", "G1202R")], "alectinib")
    assert "brigatinib" not in _names(old, "approved")
    assert "brigatinib" in _names(new, "approved")
    assert lab.chip_genes == ("DNMT3A", "TET2")
    assert _digest(SHIPPED) == before  # shipped files never edited
    # an edited override is a new version label (cache keyed on content)
    (folder / "activity.tsv").write_text((folder / "activity.tsv").read_text()
                                         .replace("Lab validation 2026", "Lab validation v2"))
    assert load_knowledge_base(overrides=folder).version != lab.version


def test_override_through_settings_env(tmp_path):
    folder = _override(tmp_path, manifest={"chip_genes": ["DNMT3A"]})
    settings = load_settings(env={"CTDNA_KB_OVERRIDES": str(folder)})
    assert settings.knowledge.overrides_dir == str(folder)
    assert knowledge_base_for(settings).chip_genes == ("DNMT3A",)


@pytest.mark.parametrize(("manifest", "extra", "match"), [
    ({"drugs": {"lorlatinib": {"indicaton": {}}}}, {}, "indicaton"),
    ({"version": "2027.01.0"}, {}, "manifest.version"),
    ({}, {"colour": "red"}, "colour"),
    ({"trials": {"X": {"name": "x", "nct": "NCT123", "nct_label": "verified", "status": "s",
                       "status_label": "verified", "setting": "s"}}}, {}, "NCT"),
])
def test_override_schema_rejects_unknown_keys(tmp_path, manifest, extra, match):
    folder = _override(tmp_path, manifest=manifest, **extra)
    with pytest.raises(KnowledgeBaseError, match=match):
        load_knowledge_base(overrides=folder)


def test_override_rejects_bad_table_and_stray_files(tmp_path):
    folder = _override(tmp_path)
    (folder / "activity.tsv").write_text("kb_id\tdrug\tactivity\tcomment\nALK:G1202R\tx\tS\tx\n")
    with pytest.raises(KnowledgeBaseError, match="unknown \\['comment'\\]"):
        load_knowledge_base(overrides=folder)
    (folder / "activity.tsv").unlink()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(KnowledgeBaseError, match="unexpected files"):
        load_knowledge_base(overrides=folder)


def test_shipped_manifest_unknown_key_rejected(tmp_path):
    dst = tmp_path / "knowledge"
    shutil.copytree(SHIPPED, dst)
    path = dst / "manifest.yaml"
    path.write_text(path.read_text().replace("chip_label:", "chip_lable: x\nchip_label:"))
    with pytest.raises(KnowledgeBaseError, match="chip_lable"):
        load_knowledge_base(dst)
