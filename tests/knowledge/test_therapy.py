"""Therapy options (alk-knowledge.md 2.1-2.3, 3.3): single, compound, bypass, labelling."""

from __future__ import annotations


def _names(advice, kind=None):
    return [o.name for o in advice.options if kind is None or o.kind == kind]


def test_single_g1202r_suggests_lorlatinib(kb):
    advice = kb.therapy_options([("ALK", "G1202R")], current_drug="alectinib")
    assert _names(advice, "approved") == ["lorlatinib"]
    lorl = next(o for o in advice.options if o.name == "lorlatinib")
    assert lorl.verified is False  # Gainor 2016 cell is recalled (alk-knowledge.md 2.1)
    assert advice.unverified is True
    assert any("alectinib activity R" in n for n in advice.notes)
    assert any("neladalkib" in n for n in _names(advice, "trial"))


def test_i1171t_is_not_alectinib(kb):
    advice = kb.therapy_options([("ALK", "I1171T")], current_drug="alectinib")
    approved = _names(advice, "approved")
    assert "alectinib" not in approved and "crizotinib" not in approved
    # after alectinib only lorlatinib is on label (issue #13); ceritinib/brigatinib are active
    # (Katayama 2014, verified) but their later-line indication is after crizotinib only
    assert approved == ["lorlatinib"]
    assert any("brigatinib active" in n and "outside its approved indication" in n
               for n in advice.notes)
    assert "Katayama 2014 abstract (verified)" in advice.citations
    first = kb.therapy_options([("ALK", "I1171T")], current_drug=None)
    assert set(_names(first, "approved")) == {"ceritinib", "brigatinib", "lorlatinib"}


def test_current_drug_never_suggested_and_aliases(kb):
    advice = kb.therapy_options([("ALK", "I1171T")], current_drug="Lorbrena")
    assert "lorlatinib" not in _names(advice)
    assert any("current drug lorlatinib activity S" in n for n in advice.notes)


def test_compound_g1202r_l1196m_has_no_approved_tki(kb):
    for alts in ([("ALK", "G1202R"), ("ALK", "L1196M")], [("ALK", "G1202R+L1196M")]):
        advice = kb.therapy_options(alts, current_drug="lorlatinib")
        assert _names(advice, "approved") == []
        trials = _names(advice, "trial")
        assert any("NVL-655" in t for t in trials) and any("TPX-0131" in t for t in trials)
        assert all(not o.verified for o in advice.options if o.kind == "trial")
        assert "tissue re-biopsy" in _names(advice, "procedure")
        assert advice.unverified is True
        assert any("compound" in n and "polyclonal" in n for n in advice.notes)
        assert any("G1202R-based" in n for n in advice.notes)


def test_unknown_compound_uses_per_component_cover(kb):
    advice = kb.therapy_options([("ALK", "I1171T"), ("ALK", "V1180L")], current_drug=None)
    assert set(_names(advice, "approved")) == {"ceritinib", "brigatinib", "lorlatinib"}
    assert all("if polyclonal" in (o.evidence_level or "") for o in advice.options
               if o.kind == "approved")
    assert any("I1171-based" in n for n in advice.notes)
    assert any("not in the knowledge base" in n for n in advice.notes)


def test_bypass_met_amplification(kb):
    advice = kb.therapy_options([("ALK", "EML4-ALK fusion"), ("MET", "amplification")],
                                current_drug="lorlatinib")
    names = _names(advice)
    assert any("crizotinib" in n for n in names)
    nct = next(o for o in advice.options if o.name.startswith("NCT04292119"))
    assert nct.kind == "trial" and nct.verified is False
    assert advice.unverified is True
    assert any("Dagogo-Jack 2020" in c for c in advice.citations)


def test_bypass_mapk(kb):
    advice = kb.therapy_options([("KRAS", "G12C")], current_drug="alectinib")
    names = _names(advice)
    assert "ALK TKI + MEK inhibitor" in names
    assert "NCT03202940 (alectinib + cobimetinib; identifier UNCONFIRMED)" in names
    assert any(n.startswith("NCT04800822") for n in names)  # SHP2 (verified)
    mek = kb.therapy_options([("MAP2K1", "K57N")], current_drug=None)
    assert not any(n.startswith("NCT04800822") for n in _names(mek))  # no SHP2 for MEK1


def test_verified_only_advice(kb):
    advice = kb.therapy_options([("NF2", "loss of function")], current_drug="lorlatinib")
    assert _names(advice) == ["mTOR inhibitor (e.g. everolimus) + ALK TKI"]
    assert advice.unverified is False


def test_transformation_needs_rebiopsy(kb):
    advice = kb.therapy_options([("TP53", "R273H"), ("RB1", "loss of function")], None)
    assert "tissue re-biopsy" in _names(advice, "procedure")
    assert advice.unverified is True


def test_nothing_actionable(kb):
    advice = kb.therapy_options([("ALK", "EML4-ALK fusion")], current_drug="alectinib")
    assert advice.options == [] and advice.notes and advice.unverified is False
    chip = kb.therapy_options([("DNMT3A", "R882H")], None)
    assert chip.options == [] and any("clonal haematopoiesis" in n for n in chip.notes)
