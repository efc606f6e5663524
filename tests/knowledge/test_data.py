"""Knowledge-base data: coordinates round-trip in both builds, labels, manifest, validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import KnowledgeBaseError
from pipeline.knowledge import load_knowledge_base
from pipeline.knowledge.data import LABELS, load_data, norm_chrom
from pipeline.knowledge.sequence import IUPAC, complement, translate_iupac

#: GRCh37 - GRCh38 offsets per gene (alk-knowledge.md 1 "lifted" and 3.1 chain table).
CHAIN_OFFSETS = {"ALK": 222866, "KRAS": 152934, "NRAS": 542621, "BRAF": -300200,
                 "MAP2K1": 292338, "PIK3CA": -282212, "EGFR": 67693, "ERBB2": -1843747,
                 "TP53": -96682, "MET": -359946}


def test_version_and_sources(kb):
    assert kb.version == "2026.12.0"
    ids = {s["id"] for s in kb.sources()}
    for needed in ("docm", "alk_knowledge", "gainor2016", "recondo2020", "shiba_ishii2022",
                   "desai_lovly2023", "dagogo_jack2020", "pmc10552597", "woodhouse2020",
                   "moalmanac"):
        assert needed in ids
    for s in kb.sources():
        assert s["name"] and s["version"] and s["licence"]
        assert "url" in s


def test_every_codon_round_trips_in_both_builds(kb):
    """Reference codon translates to the named amino acid; positions follow the strand; the
    hotspot VCF REF bases (independent DoCM facts) read on the coding strand agree with it."""
    codons = kb.data.codons
    hot = kb.data.hotspot_alleles
    checked = 0
    for _, c in codons.iterrows():
        assert translate_iupac(c["ref_codon"]) == c["ref_aa"], c["codon_id"]
        step = -1 if c["strand"] == "-" else 1
        for build in ("grch37", "grch38"):
            p = [int(c[f"{build}_pos{k}"]) for k in (1, 2, 3)]
            assert p[1] - p[0] == step and p[2] - p[1] == step, (c["codon_id"], build)
        offset = int(c["grch37_pos1"]) - int(c["grch38_pos1"])
        assert offset == CHAIN_OFFSETS[c["gene"]], c["codon_id"]
        for build in ("grch37", "grch38"):
            where = {int(c[f"{build}_pos{k + 1}"]): k for k in range(3)}
            rows = hot[(hot["gene"] == c["gene"]) & (hot[f"{build}_ref"].str.len()
                                                     == hot[f"{build}_alt"].str.len())]
            for _, h in rows.iterrows():
                for i, base in enumerate(h[f"{build}_ref"]):
                    g = int(h[f"{build}_pos"]) + i
                    if g in where:
                        coding = complement(base) if c["strand"] == "-" else base
                        assert coding in IUPAC[c["ref_codon"][where[g]]], (c["codon_id"], build)
                        checked += 1
    assert checked > 250


def test_alk_codons_match_exon_model(kb):
    """ALK codon positions follow from the exon table (alk-knowledge.md 1.2) in both builds."""
    exons37 = {21: (29445383, 29445473, 3360), 22: (29445210, 29445274, 3451),
               23: (29443572, 29443701, 3516), 24: (29436850, 29436947, 3646),
               25: (29432652, 29432744, 3744)}
    alk = kb.data.codons[kb.data.codons["gene"] == "ALK"]
    assert len(alk) == 18
    for _, c in alk.iterrows():
        c1 = 3 * int(c["aa_pos"]) - 2
        exon = int(c["exon"])
        lo, hi, first_c = exons37[exon]
        expected = hi - (c1 - first_c)  # minus strand: c. increases as position decreases
        assert int(c["grch37_pos1"]) == expected
        assert lo <= int(c["grch37_pos3"]) <= hi
        assert int(c["grch38_pos1"]) == expected - 222866


def test_every_hotspot_allele_translates_to_its_name(kb):
    """Each substitution hotspot, applied to its codon, gives the named amino acid."""
    codons = kb.data.codons.set_index("codon_id")
    for build in ("GRCh37", "GRCh38"):
        key = build.lower()
        hot = kb.data.hotspot_alleles
        hot = hot[(hot[f"{key}_ref"].str.len() == hot[f"{key}_alt"].str.len())]
        for _, h in hot.iterrows():
            codon = codons.loc[f"{h['gene']}:{h['protein'][:-1]}"]
            pos = {int(codon[f"{key}_pos{k + 1}"]): k for k in range(3)}
            mutated = list(codon["ref_codon"])
            for i, base in enumerate(h[f"{key}_alt"]):
                k = pos[int(h[f"{key}_pos"]) + i]
                mutated[k] = complement(base) if codon["strand"] == "-" else base
            assert translate_iupac("".join(mutated)) == h["protein"][-1], (h["protein"], build)


def test_labels_and_unverified_claims_stay_unverified(kb):
    entries = kb.data.entries
    assert set(entries["evidence_label"]) <= set(LABELS)
    # recalled in alk-knowledge.md 2.1: G1202R lorlatinib S (Gainor 2016, recalled)
    assert kb.entry("ALK:G1202R").activity["lorlatinib"]["evidence_label"] == "recalled-unverified"
    # verified in 2.1: ceritinib R (Friboulet 2014 via MOAlmanac); I1171T row (Katayama 2014)
    assert kb.entry("ALK:G1202R").activity["ceritinib"]["evidence_label"] == "verified"
    assert kb.entry("ALK:I1171T").activity["alectinib"] == {
        "activity": "R", "reported": "R", "evidence_label": "verified",
        "citation": "Katayama 2014 abstract (verified)"}
    assert kb.entry("ALK:L1256F").verified is False
    assert kb.entry("EGFR:L858R").verified is False  # EGFR bypass class is recalled
    assert kb.entry("KRAS:G12C").verified is True
    strategies = kb.data.manifest["strategies"]
    trial_labels = {s["name"]: s["label"] for k in strategies for s in strategies[k]}
    assert trial_labels["NCT03202940 (alectinib + cobimetinib; identifier UNCONFIRMED)"] == \
        "recalled-unverified"
    assert trial_labels["NCT04005144 (brigatinib + binimetinib; identifier UNCONFIRMED)"] == \
        "recalled-unverified"
    assert trial_labels["NCT04800822 (PF-07284892 SHP2 inhibitor + lorlatinib)"] == "verified"


def test_entry_fields(kb):
    e = kb.entry("ALK:G1202R")
    assert (e.gene, e.alteration, e.category, e.hgvs_p) == ("ALK", "G1202R", "alk_resistance",
                                                             "p.Gly1202Arg")
    assert e.hgvs_c == "c.3604G>A; c.3604G>C"  # both single-nucleotide routes
    assert e.codon is not None and e.codon["ref_codon"] == "GGA"
    assert set(e.activity) >= {"crizotinib", "ceritinib", "alectinib", "brigatinib", "ensartinib",
                               "lorlatinib", "neladalkib", "zotizalkib"}
    comp = kb.entry("ALK:L1196M+G1202R")
    assert comp.components == ("L1196M", "G1202R")
    assert comp.activity["lorlatinib"]["activity"] == "R"
    with pytest.raises(KeyError):
        kb.entry("ALK:Z9999Q")


def test_norm_chrom():
    assert norm_chrom("chr2") == "2" and norm_chrom("2") == "2" and norm_chrom("chrM") == "MT"


def _copy_kb(tmp_path: Path) -> Path:
    src = Path(__file__).resolve().parents[2] / "configs" / "knowledge"
    dst = tmp_path / "knowledge"
    shutil.copytree(src, dst)
    return dst


def test_inconsistent_codon_is_rejected(tmp_path):
    folder = _copy_kb(tmp_path)
    path = folder / "codons.tsv"
    path.write_text(path.read_text().replace("ALK:G1202\tALK\t1202\tG\tGGA",
                                             "ALK:G1202\tALK\t1202\tG\tAGA"))
    with pytest.raises(KnowledgeBaseError, match="does not translate"):
        load_data(folder)


def test_activity_for_unknown_entry_is_rejected(tmp_path):
    folder = _copy_kb(tmp_path)
    path = folder / "activity.tsv"
    path.write_text(path.read_text() + "ALK:Q9999Z\tlorlatinib\tS\tS\tverified\tnone\n")
    with pytest.raises(KnowledgeBaseError, match="unknown entries"):
        load_data(folder)


def test_bad_version_is_rejected(tmp_path):
    folder = _copy_kb(tmp_path)
    path = folder / "manifest.yaml"
    path.write_text(path.read_text().replace('version: "2026.12.0"', 'version: "latest"'))
    with pytest.raises(KnowledgeBaseError, match="version"):
        load_data(folder)


def test_loader_is_cached():
    assert load_knowledge_base() is load_knowledge_base()
