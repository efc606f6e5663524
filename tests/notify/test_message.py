from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.notify.message import (
    build_email,
    format_vaf_percent,
    notification_content,
    render_notification,
    render_subject,
    report_location,
    subject_leaks,
)

from .helpers import (
    assessment,
    make_settings,
    resistance_alert,
    subject_tokens,
)

REF = "A7F3-K92Q"
SUBJECT_RE = re.compile(r"^\[ctDNA surveillance\] (FAILURE|WARNING|INFO): result "
                        r"(requires|available for) review – ref [0-9A-Z]{4}-[0-9A-Z]{4}$")


def _content(settings, a=None, **kw):
    a = a or assessment()
    alert = a.alerts[0]
    return a, notification_content(a, kind="alert", tier=alert.tier, alert=alert,
                                   report=report_location(settings, a.patient_id), **kw)


@pytest.mark.parametrize(("vaf", "text"), [
    (0.011, "1.10 %"), (0.25, "25.0 %"), (0.00052, "0.0520 %"), (1.0, "100 %"),
    (None, "unknown"),
])
def test_vaf_is_declared_as_percent(vaf, text):
    assert format_vaf_percent(vaf) == text


def test_subject_is_fixed_and_phi_free(settings):
    a, content = _content(settings)
    rendered = render_notification(content, REF, settings)
    assert rendered.subject == (
        f"[ctDNA surveillance] FAILURE: result requires review – ref {REF}")
    assert SUBJECT_RE.match(rendered.subject)
    for token in subject_tokens(a):
        assert token.lower() not in rendered.subject.lower()


def test_body_has_findings_actions_evidence_versions_and_report_pointer(settings):
    _, content = _content(settings, assessment(alerts=[resistance_alert("S-101", "S-102")]))
    rendered = render_notification(content, REF, settings,
                                   generated_at=datetime(2025, 7, 1, 6, 0, tzinfo=UTC))
    for body in (rendered.text, rendered.html):
        assert REF in body
        assert "PT-0001" in body  # pseudonymous ID: body only
        assert "ALK G1202R" in body
        assert "VAF 1.10 %" in body and "VAF 1.30 %" in body  # fraction 0.011 shown as %
        assert "S-101" in body and "2025-06-02" in body
        assert "Confirm with a repeat draw" in body
        assert "Shaw 2019" in body
        assert "UNVERIFIED" in body
        assert "never an automatic change of therapy" in body
        assert "https://lis.example/ctdna/PT-0001.html" in body
        assert "2026.11.0+abc123def456" in body and "kb-2026.1" in body
        assert "2025-07-01 06:00 UTC" in body


def test_non_detect_is_below_lod_never_zero(settings):
    alert = resistance_alert("S-101")
    alert.findings[0].detected = False
    alert.findings[0].vaf = None
    _, content = _content(settings, assessment(alerts=[alert]))
    text = render_notification(content, REF, settings).text
    assert "below this draw's LoD of 0.500 % VAF" in text
    assert "VAF 0" not in text


def test_html_is_autoescaped(settings):
    _, content = _content(settings)
    html = render_notification(content, REF, settings).html
    assert "NCT00000000 &lt;check&gt;" in html
    assert "<check>" not in html


def test_local_report_path_without_base_url(tmp_path: Path):
    settings = make_settings(tmp_path)
    _, content = _content(settings)
    text = render_notification(content, REF, settings).text
    assert str(tmp_path / "reports" / "PT-0001.html") in text
    assert "https://" not in text


def test_test_mode_marks_subject_and_body(tmp_path: Path):
    settings = make_settings(tmp_path, test_mode=True)
    _, content = _content(settings)
    rendered = render_notification(content, REF, settings)
    assert rendered.subject.startswith(
        "[TEST] [ctDNA surveillance] FAILURE: result requires review")
    assert "TEST MESSAGE" in rendered.text and "TEST MESSAGE" in rendered.html


def test_recovery_subject_is_neutral(settings):
    assert render_subject(settings, REF, "INFO") == (
        f"[ctDNA surveillance] INFO: result available for review – ref {REF}")


@pytest.mark.parametrize("prefix", ["[ALK progression]", "[PT-0001]", "[alectinib]"])
def test_leaking_prefix_is_refused(tmp_path: Path, prefix):
    settings = make_settings(tmp_path, subject_prefix=prefix)
    _, content = _content(settings)
    with pytest.raises(ConfigError, match=r"notify\.subject_prefix"):
        render_notification(content, REF, settings)


def test_ref_spelling_a_gene_is_not_a_leak(settings):
    _, content = _content(settings, assessment(alerts=[resistance_alert("S-1", gene="KRAS")]))
    subject = render_subject(settings, "KRAS-1234", "WARNING", content)
    assert subject.endswith("ref KRAS-1234")
    assert subject_leaks(subject, content) == ["KRAS"]  # the raw check would flag it


def test_mime_structure_no_attachments_and_inline_chart(settings):
    _, content = _content(settings)
    msg = build_email(content, REF, ["x@hospital.example"], settings)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert list(msg.iter_attachments()) == []
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Ctdna-Ref"] == REF

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    with_chart = build_email(content, REF, ["x@hospital.example"], settings, chart_png=png)
    parsed = message_from_bytes(with_chart.as_bytes(), policy=policy.default)
    html_part = parsed.get_payload()[1]
    assert html_part.get_content_type() == "multipart/related"
    image = html_part.get_payload()[1]
    assert image.get_content_type() == "image/png"
    assert image.get_content_disposition() == "inline"
    cid = image["Content-ID"].strip("<>")
    assert f"cid:{cid}" in html_part.get_payload()[0].get_content()
    assert image.get_content() == png
