"""The inline trend chart, drawn by pipeline.report.charts from the real store."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from pipeline.notify import deliver_pending, enqueue_for_assessment
from pipeline.notify.charts import store_chart_provider
from pipeline.notify.transport import SmtpTransport
from pipeline.store.models import observations, samples, therapy_lines
from pipeline.store.repository import Store

from .helpers import add_patients, assessment, smtp_settings


def _store_with_draws(engine) -> Store:
    add_patients(engine, ("PT-0001", "thoracic-a"))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(therapy_lines).values(
            patient_id="PT-0001", line=1, drug="alectinib", start_date=date(2025, 2, 3),
            updated_at=now))
        for i, (sid, day, vaf) in enumerate([("S-100", date(2025, 1, 30), 0.05),
                                             ("S-101", date(2025, 6, 2), 0.011)]):
            pk = conn.execute(sa.insert(samples).values(
                sample_id=sid, version=1, is_current=True, patient_id="PT-0001",
                collection_date=day, source_path=f"/in/{sid}.vcf", content_sha256=str(i) * 64,
                file_format="vcf", genome_build="GRCh38", lod_vaf=0.005, lod_source="assay",
                n_records=1, kb_version="kb", ingested_at=now)).inserted_primary_key[0]
            conn.execute(sa.insert(observations).values(
                sample_pk=pk, record_index=0, chrom="chr2", pos=29220829, ref="C", alt="T",
                variant_type="snv", gene="ALK", alteration="G1202R", category="alk_resistance",
                vaf=vaf, alt_reads=int(vaf * 2000), depth=2000, filter="PASS", detected=True))
    return Store(str(engine.url))


def test_alert_email_embeds_trend_chart_inline(engine, tmp_path, smtp_server):
    store = _store_with_draws(engine)
    settings = smtp_settings(tmp_path, smtp_server.port)
    enqueue_for_assessment(engine, assessment(), None, "thoracic-a", settings)
    report = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "r1",
                             chart_for=store_chart_provider(store))
    store.dispose()
    # one digest (alert + status change of the patient), its chart drawn once
    assert len(report.sent) == 1 and report.warnings == []
    assert len(smtp_server.handler.messages) == 1
    for _, _, msg in smtp_server.handler.messages:
        html_part = msg.get_payload()[1]
        assert html_part.get_content_type() == "multipart/related"
        image = html_part.get_payload()[1]
        assert image.get_content_type() == "image/png"
        assert image.get_content().startswith(b"\x89PNG")
        assert list(msg.iter_attachments()) == []


def test_chart_failure_never_blocks_the_alert(engine, tmp_path, smtp_server):
    add_patients(engine, ("PT-0001", "thoracic-a"))
    settings = smtp_settings(tmp_path, smtp_server.port)
    enqueue_for_assessment(engine, assessment(), None, "thoracic-a", settings)

    def broken_chart(patient_id: str) -> bytes:
        raise ValueError("no draws to plot")

    report = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "r1",
                             chart_for=broken_chart)
    assert len(report.sent) == 1
    assert len(report.warnings) == 1 and "without chart" in report.warnings[0]
    assert all(m[2].get_payload()[1].get_content_type() == "text/html"
               for m in smtp_server.handler.messages)


def test_email_reuses_the_report_steps_png_and_draws_only_what_is_missing(engine, tmp_path):
    """#11 item 3: one render per patient per run, shared by report and email."""
    from pipeline.notify.charts import report_chart_provider
    from pipeline.report.chartcache import ChartCache

    store = _store_with_draws(engine)
    reports = tmp_path / "reports"
    drawn_by_report = b"\x89PNG\r\n\x1a\n(the report step's render)"
    ChartCache.for_reports(reports).store("PT-0001", "fp-1", "png", drawn_by_report)

    provider = report_chart_provider(store, reports)  # a later task: a fresh process view
    assert provider("PT-0001") == drawn_by_report
    assert provider.drawn == []  # type: ignore[attr-defined]

    # no report render (a retried delivery in a later run): drawn from the store, once
    fresh = report_chart_provider(store, tmp_path / "empty-reports")
    png = fresh("PT-0001")
    assert png is not None and png.startswith(b"\x89PNG") and png != drawn_by_report
    assert fresh("PT-0001") == png and fresh.drawn == ["PT-0001"]  # type: ignore[attr-defined]
