"""Ingest through the real readers into a real store: detection policy and unclassified rows
(#9 item 4), draw-level values and therapy intent (#9 item 7), profiles and relative days
(#12 item 5). Real files are read in place from ../shared/realdata (skipped when absent)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config import load_settings
from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.kinetics import marker_keys, marker_labels
from pipeline.knowledge import load_knowledge_base
from pipeline.store.repository import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "io"
REALDATA = Path(os.environ.get("CTDNA_REALDATA")
                or Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata")
MANIFEST_HEADER = "sample_id,patient_id,collection_date,anchor_date,path,profile\n"


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield s
    s.dispose()


def _manifest(folder: Path, rows: list[tuple[str, ...]]) -> Path:
    path = folder / "manifest.csv"
    path.write_text(MANIFEST_HEADER + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_low_vendor_calls_are_detections_and_untyped_rows_are_warned(tmp_path, store, kb):
    table = tmp_path / "g.csv"
    table.write_bytes((FIXTURES / "guardant_untyped.csv").read_bytes())
    manifest = _manifest(tmp_path, [("X1_0", "X1", "", "2021-03-01", "g.csv", "guardant360"),
                                    ("X1_35", "X1", "", "2021-03-01", "g.csv", "guardant360"),
                                    ("X1_70", "X1", "", "2021-03-01", "g.csv", "guardant360")])
    report = ingest_manifest(manifest, store, load_settings(env={}), kb)
    assert sorted(report.ingested) == ["X1_0", "X1_35", "X1_70"] and not report.rejected
    warned = report.to_json()["warnings"]
    assert [(w["sample_id"], Path(w["path"]).name) for w in warned
            if "cannot type" in w["warning"]] == [("X1_0", "g.csv")]
    samples = store.samples_frame(["X1"]).set_index("sample_id")
    assert [str(d) for d in samples["collection_date"]] == ["2021-03-01", "2021-04-05",
                                                            "2021-05-10"]
    assert set(samples["assay"]) == {"guardant360"}  # the profile's assay
    assert samples["lod_vaf"].tolist() == pytest.approx([0.001] * 3)
    obs = store.observations_frame(["X1"])
    l858r = obs[obs["protein_change"] == "L858R"]
    # 0.03 % and 0.02 % are below Guardant's 0.1 % LoD but Guardant reported them.
    assert l858r["vaf"].tolist() == pytest.approx([0.0003, 0.0002])
    assert l858r["detected"].all()
    unclassified = obs[obs["variant_type"] == "unclassified"]
    assert sorted(unclassified["gene"]) == ["EGFR", "TP53"]
    assert unclassified["sample_id"].eq("X1_0").all()


def test_lod_floor_policy_keeps_the_old_meaning(tmp_path, store, kb):
    table = tmp_path / "g.csv"
    table.write_bytes((FIXTURES / "guardant_untyped.csv").read_bytes())
    config = tmp_path / "lab.yaml"
    config.write_text("assays:\n  guardant360:\n    detection: lod_floor\n")
    manifest = _manifest(tmp_path, [("X1_0", "X1", "2021-03-01", "", "g.csv", "guardant360")])
    ingest_manifest(manifest, store, load_settings(config, env={}), kb)
    obs = store.observations_frame(["X1"])
    assert not obs.loc[obs["protein_change"] == "L858R", "detected"].any()


def test_dates_must_agree_and_an_undatable_row_is_rejected(tmp_path, store, kb):
    table = tmp_path / "g.csv"
    table.write_bytes((FIXTURES / "guardant_untyped.csv").read_bytes())
    manifest = _manifest(tmp_path, [
        ("X1_0", "X1", "2021-03-02", "2021-03-01", "g.csv", "guardant360"),
        ("X1_35", "X1", "", "", "g.csv", "guardant360"),
        ("X1_70", "X1", "2021-05-10", "2021-03-01", "g.csv", "guardant360")])
    report = ingest_manifest(manifest, store, load_settings(env={}), kb)
    assert report.ingested == ["X1_70"]
    errors = sorted(r.error for r in report.rejected)
    assert "line 2: field collection_date: collection_date 2021-03-02 disagrees" in errors[0]
    assert "line 3: field collection_date: required value is empty" in errors[1]


def test_draw_level_and_variant_draws_of_one_patient_combine(tmp_path, store, kb):
    (tmp_path / "mrd.csv").write_bytes((FIXTURES / "mrd_draw_level.csv").read_bytes())
    (tmp_path / "calls.csv").write_text(
        "sample_id,gene,variant_type,protein_change,vaf,alt_reads,depth,fusion_partner\n"
        "V1,ALK,fusion,,0.012,24,2000,EML4\n")
    path = tmp_path / "manifest.csv"
    path.write_text(
        "sample_id,patient_id,collection_date,anchor_date,path,profile,genome_build\n"
        "M1_2,M1,,2020-01-10,mrd.csv,mrd_meanaf,\n"
        "M1_3,M1,,2020-01-10,mrd.csv,mrd_meanaf,\n"
        "V1,M1,2020-02-01,,calls.csv,,GRCh38\n")
    (tmp_path / "therapies.csv").write_text(
        "patient_id,drug,start_date,intent\nM1,alectinib,2020-01-20,adjuvant\n")
    settings = load_settings(env={})
    report = ingest_manifest(path, store, settings, kb)
    assert sorted(report.ingested) == ["M1_2", "M1_3", "V1"], report.rejected
    ingest_therapies(tmp_path / "therapies.csv", store)
    samples = store.samples_frame(["M1"]).set_index("sample_id")
    assert samples.loc["M1_3", "level_value"] == pytest.approx(2.5e-05)
    assert samples.loc["M1_3", "level_call"] == "positive"
    assert samples.loc["M1_2", "level_call"] == "negative"
    assert samples["level_value"].isna().loc[["M1_2", "V1"]].all()  # non-detect, no level
    assert samples.loc["V1", "level_unit"] is None
    assert set(samples.loc[["M1_2", "M1_3"], "level_unit"]) == {"mean_vaf"}
    assert str(samples.loc["M1_3", "collection_date"]) == "2020-04-26"
    assert len(store.observations_frame(["M1"])) == 1  # the fusion of the variant draw
    assert store.therapies_frame(["M1"])["intent"].tolist() == ["adjuvant"]
    # Re-ingesting the same batch is a no-op (the level is part of the content hash).
    again = ingest_manifest(path, store, settings, kb)
    assert sorted(again.unchanged) == ["M1_2", "M1_3", "V1"]


def test_therapy_intent_is_validated_and_defaults_to_palliative(tmp_path, store):
    from pipeline.errors import ManifestError

    bad = tmp_path / "t.csv"
    bad.write_text("patient_id,drug,start_date,intent\nP1,alectinib,2020-01-20,adjuvent\n")
    with pytest.raises(ManifestError, match="line 2: field intent: unknown intent 'adjuvent'"):
        ingest_therapies(bad, store)
    assert store.therapies_frame().empty  # nothing half-stored
    good = tmp_path / "g.csv"
    good.write_text("patient_id,drug,start_date\nP1,alectinib,2020-01-20\n")
    ingest_therapies(good, store)
    assert store.therapies_frame(["P1"])["intent"].tolist() == ["palliative"]


def test_cli_broken_lab_profile_refuses_batch_exit_2(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "mylab.yaml").write_text("name: mylab\ndetect_colums: [A]\n")
    (tmp_path / "g.csv").write_bytes((FIXTURES / "guardant_untyped.csv").read_bytes())
    manifest = _manifest(tmp_path, [("X1_0", "X1", "2021-03-01", "", "g.csv", "guardant360"),
                                    ("X1_35", "X1", "2021-04-05", "", "g.csv", "mylab")])
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    result = CliRunner().invoke(app, ["ingest", "--manifest", str(manifest), "--db", db],
                                env={"CTDNA_PROFILES_DIR": str(profiles)})
    assert result.exit_code == 2
    # The new-store notice (#12 item 4) may stand beside the one error line.
    lines = [ln for ln in result.output.splitlines()
             if ln.strip() and not ln.startswith("ctdna: notice:")]
    assert len(lines) == 1 and "mylab.yaml" in lines[0] and "detect_colums" in lines[0]
    assert "Traceback" not in result.output
    store = Store(db)
    assert store.samples_frame().empty  # nothing half-stored
    store.dispose()


def test_cli_profile_path_in_manifest_is_rejected(tmp_path):
    (tmp_path / "g.csv").write_bytes((FIXTURES / "guardant_untyped.csv").read_bytes())
    manifest = _manifest(tmp_path, [("X1_0", "X1", "2021-03-01", "", "g.csv",
                                     "../configs/profiles/guardant360")])
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    result = CliRunner().invoke(app, ["ingest", "--manifest", str(manifest), "--db", db,
                                      "--json"])
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ingested"] == [] and "not a profile name" in payload["rejected"][0]["error"]


def _guardant_manifest(folder: Path, table: Path,
                       patients: set[str] | None = None) -> tuple[Path, set[str]]:
    with table.open(newline="") as handle:
        draws = {(r["Patient.ID"], str(int(float(r["Blood.Collection.Date"]))))
                 for r in csv.DictReader(handle)
                 if patients is None or r["Patient.ID"] in patients}
    rows = [(f"{p}_{d}", p, "", "2015-01-01", str(table), "guardant360") for p, d in draws]
    return _manifest(folder, sorted(rows)), {r[0] for r in rows}


def _realdata_settings(tmp_path, realdata):
    """Settings that allow-list the shared realdata folder (read in place, never copied):
    manifest paths must stay inside the batch folder or an allowed root (#10 item 4)."""
    config = tmp_path / "realdata-roots.yaml"
    config.write_text(f"ingest:\n  allowed_roots: [{realdata.resolve()}]\n")
    return load_settings(config, env={})


@pytest.mark.realdata
def test_real_guardant_multi_loses_no_draw(tmp_path, store, kb):
    table = REALDATA / "mumtahena__ctDNA_lung/multi.csv"
    if not table.is_file():
        pytest.skip("shared/realdata not present")
    manifest, draws = _guardant_manifest(tmp_path, table)
    report = ingest_manifest(manifest, store, _realdata_settings(tmp_path, REALDATA), kb)
    assert len(draws) == 60
    assert report.rejected == [] and sorted(report.ingested) == sorted(draws)
    untyped = [w for w in report.warnings if "cannot type" in w.message]
    assert untyped and all(w.path == str(table.resolve()) for w in untyped)
    obs = store.observations_frame()
    low = obs[(obs["vaf"] >= 0.0002 - 1e-9) & (obs["vaf"] <= 0.0004 + 1e-9)]
    assert len(low) > 0 and low["detected"].all()  # vendor calls at 0.02-0.04 %
    assert (obs["variant_type"] == "unclassified").sum() == sum(
        int(w.message.split(" ", 1)[0]) for w in untyped)


@pytest.mark.realdata
def test_real_guardant_prep_gg_loses_no_draw(tmp_path, store, kb):
    table = REALDATA / "mumtahena__ctDNA_lung/prep_gg.csv"
    if not table.is_file():
        pytest.skip("shared/realdata not present")
    # The G216/G301/G18 plus the first 20 patients (every row of prep_gg is typed by
    # the profile; the whole table is 473 draws, and one-table batching is #11's work).
    with table.open(newline="") as handle:
        first = sorted({r["Patient.ID"] for r in csv.DictReader(handle)})[:20]
    manifest, draws = _guardant_manifest(tmp_path, table, set(first) | {"G216", "G301", "G18"})
    report = ingest_manifest(manifest, store, _realdata_settings(tmp_path, REALDATA), kb)
    assert report.rejected == [] and len(report.ingested) == len(draws)
    obs = store.observations_frame(["G216"])
    assert "I1171N" in set(obs["alteration"])


@pytest.mark.realdata
def test_real_post_surgery_mrd_table(tmp_path, store, kb):
    table = REALDATA / ("cancer-oncogenomics__ctDNA-dynamic-prediction-lung-cancer/"
                        "Joint_model_data.csv")
    if not table.is_file():
        pytest.skip("shared/realdata not present")
    with table.open(newline="") as handle:
        raw = list(csv.DictReader(handle))
    rows = [(f"{r['PatientID']}_{r['Time_point']}", r["PatientID"], "", "2019-06-03",
             str(table), "mrd_meanaf") for r in raw]
    report = ingest_manifest(_manifest(tmp_path, rows), store,
                             _realdata_settings(tmp_path, REALDATA), kb)
    assert report.rejected == [] and len(report.ingested) == len(raw)
    samples = store.samples_frame().set_index("sample_id")
    expected = {f"{r['PatientID']}_{r['Time_point']}": r for r in raw}
    calls = {k: {"Pos": "positive", "Neg": "negative"}[v["Test_status"]]
             for k, v in expected.items()}
    assert samples["level_call"].to_dict() == calls
    positive = samples[samples["level_call"] == "positive"]
    assert positive["level_value"].tolist() == pytest.approx(
        [float(expected[s]["meanAF"]) for s in positive.index])
    assert samples.loc[samples["level_call"] == "negative", "level_value"].isna().all()
    assert set(samples["level_unit"]) == {"mean_vaf"}


def test_unclassified_rows_are_named_by_the_vendor_text(tmp_path, store, kb):
    # Round 2 review of the real Guardant reports: an untyped row ("TP53 Splice") was shown
    # as "TP53 >: VAF 1.90%". Its name is now the vendor's text; its identity is unchanged.
    table = tmp_path / "g.csv"
    table.write_bytes((FIXTURES / "guardant_untyped.csv").read_bytes())
    manifest = _manifest(tmp_path, [("X1_0", "X1", "", "2021-03-01", "g.csv", "guardant360")])
    ingest_manifest(manifest, store, load_settings(env={}), kb)
    obs = store.observations_frame(["X1"])
    untyped = obs[obs["variant_type"] == "unclassified"]
    assert sorted(marker_labels(untyped)) == ["EGFR Exon", "TP53 Splice"]
    assert set(marker_keys(untyped)) == {"EGFR:unclassified", "TP53:unclassified"}
    out = tmp_path / "x1.html"
    result = CliRunner().invoke(app, ["report", "--db", f"sqlite:///{tmp_path / 'store.sqlite'}",
                                      "--patient", "X1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "TP53 Splice: VAF 0.40%" in html and "TP53 &gt;" not in html
