"""Rendering of PHI-minimal clinical alert emails (engineering-notes.md section 4.2).

What a notification says is frozen at enqueue time as a JSON ``content`` snapshot in the
ledger (:func:`notification_content`), so that a message re-sent after an SMTP outage says
exactly what the assessment said when it was made. At delivery the snapshot is rendered with
jinja2 into a plain-text part and an autoescaped HTML part (``multipart/alternative``;
clients show the last part they can render, section 4.2.8).

PHI rules enforced here:

* The subject is a fixed template: prefix, neutral wording, the random alert reference. It
  never carries a patient identifier, gene, variant, drug or "progression" wording
  (section 4.2.1); :func:`render_subject` re-checks the rendered subject against a deny-list
  built from the notification itself and refuses to render a leaking subject.
* The body carries the pseudonymous patient ID (needed to find the report), the findings and
  what to consider; no name, date of birth or MRN exist anywhere in ctdna.
* No attachments. An inline trend chart (``multipart/related``) is allowed.

VAF is a fraction internally; it is shown as a percent here, at the edge, labelled ``%``. A
non-detect is shown as "below this draw's LoD", never as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from pipeline.assessment import FAILURE_MEANING, Alert, Assessment
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.notify.digest import TIER_RANK, Digest, DigestItem

CONTENT_SCHEMA = 1

_TEMPLATES = Path(__file__).resolve().parent / "templates"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
    # HTML templates are autoescaped: rule titles, notes and KB text are data, not markup.
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                        default_for_string=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)

TIER_WORDS = {
    "FAILURE": (
        "FAILURE - early-switch review by a clinician is advised "
        "(never an automatic change of therapy)"
    ),
    "WARNING": "WARNING - the result needs clinical review and closer monitoring",
    "INFO": "INFORMATION - the molecular-response status is no longer at warning/failure level",
}

STATUS_WORDS = {
    "OPTIMAL": "optimal molecular response",
    "WARNING": "warning",
    "FAILURE": "failure (early-switch review)",
    "NOT_EVALUABLE": "not evaluable",
}

# Words that must never appear in a subject line whatever the prefix says (section 4.2.1).
_SUBJECT_DENY_WORDS = ("progression", "resistance", "relapse", "mutation", "ctdna level")


@dataclass(frozen=True)
class RenderedMessage:
    """A rendered notification.

    Attributes
    ----------
    subject
        One line, no PHI.
    text
        The plain-text body.
    html
        The HTML body (autoescaped).
    """

    subject: str
    text: str
    html: str


def format_vaf_percent(vaf: float | None) -> str:
    """Format a VAF fraction (0-1) as a percent with three significant digits.

    Parameters
    ----------
    vaf
        Variant allele fraction, 0-1.

    Returns
    -------
    str
        e.g. ``"1.10 %"`` for 0.011, ``"0.0520 %"`` for 0.00052; ``"unknown"`` for ``None``.
    """
    if vaf is None or (isinstance(vaf, float) and math.isnan(vaf)):
        return "unknown"
    pct = float(vaf) * 100.0
    if pct == 0:
        # Only reachable for a malformed finding: a detected VAF is never zero.
        return "0 %"
    decimals = max(0, 2 - math.floor(math.log10(abs(pct))))
    return f"{pct:.{decimals}f} %"


def report_location(settings: Settings, patient_id: str, report_path: str | Path | None = None
                    ) -> dict[str, str | None]:
    """Where the care team opens the patient's report.

    Parameters
    ----------
    settings
        ``notify.report_base_url`` and ``paths.reports`` are read.
    patient_id
        Pseudonymous patient ID.
    report_path
        The report file written for this patient, when the caller knows it; otherwise
        ``<paths.reports>/<patient_id>.html`` is assumed.

    Returns
    -------
    dict
        ``{"url": <report_base_url + file name> or None, "path": <local path>}``.
    """
    path = Path(report_path) if report_path is not None else (
        Path(settings.paths.reports) / f"{patient_id}.html"
    )
    base = settings.notify.report_base_url
    url = None
    if base:
        url = (base if base.endswith("/") else base + "/") + path.name
    return {"url": url, "path": str(path)}


def _therapy(assessment: Assessment) -> dict[str, Any] | None:
    if assessment.therapy is None:
        return None
    return assessment.therapy.model_dump(mode="json")


def notification_content(
    assessment: Assessment,
    *,
    kind: str,
    tier: str,
    alert: Alert | None = None,
    driving_alerts: list[Alert] | None = None,
    previous_status: str | None = None,
    report: dict[str, str | None],
) -> dict[str, Any]:
    """The JSON snapshot stored in the ledger's ``content`` column.

    Parameters
    ----------
    assessment
        The assessment that produced the notification.
    kind
        ``"alert"`` (one rule's alert) or ``"status"`` (a change of status).
    tier
        ``INFO``, ``WARNING`` or ``FAILURE``: the tier of the notification.
    alert
        For ``kind="alert"``: the alert.
    driving_alerts
        For ``kind="status"``: the alerts whose tier equals the new status.
    previous_status
        For ``kind="status"``: the last notified status (``None``: never notified).
    report
        From :func:`report_location`.

    Returns
    -------
    dict
        JSON-serialisable; everything :func:`render_notification` needs.
    """
    return {
        "schema": CONTENT_SCHEMA,
        "kind": kind,
        "tier": tier,
        "patient_id": assessment.patient_id,
        "as_of": assessment.as_of.isoformat(),
        "status": assessment.status,
        "previous_status": previous_status,
        "status_reason": assessment.status_reason,
        "headline": assessment.headline,
        "therapy": _therapy(assessment),
        "alert": alert.model_dump(mode="json") if alert is not None else None,
        "alerts": [a.model_dump(mode="json") for a in (driving_alerts or [])],
        "next_draw_due": assessment.next_draw_due.isoformat() if assessment.next_draw_due else None,
        "caveats": list(assessment.caveats),
        "report": report,
        "config_version": assessment.config_version,
        "kb_version": assessment.kb_version,
        "pipeline_version": assessment.pipeline_version,
    }


def _finding_result(finding: dict[str, Any]) -> str:
    """One finding's result in words (VAF as percent, non-detect relative to the LoD)."""
    if not finding.get("detected", True):
        lod = finding.get("lod_vaf")
        if lod is not None:
            return f"not detected (below this draw's LoD of {format_vaf_percent(lod)} VAF)"
        return "not detected (below this draw's LoD)"
    parts: list[str] = []
    if finding.get("vaf") is not None:
        parts.append(f"VAF {format_vaf_percent(finding['vaf'])}")
    if finding.get("copy_number") is not None:
        parts.append(f"copy number {finding['copy_number']:.2f}")
    if finding.get("alt_reads") is not None and finding.get("depth") is not None:
        parts.append(f"{finding['alt_reads']}/{finding['depth']} reads")
    if finding.get("ctdna_level") is not None:
        parts.append(f"ctDNA level {format_vaf_percent(finding['ctdna_level'])}")
    return ", ".join(parts) if parts else "detected"


def _alert_view(alert: dict[str, Any]) -> dict[str, Any]:
    findings = []
    for f in alert.get("findings", []):
        name = " ".join(x for x in (f.get("gene"), f.get("alteration")) if x) or "ctDNA"
        findings.append({
            "name": name,
            "sample_id": f["sample_id"],
            "collection_date": f["collection_date"],
            "result": _finding_result(f),
            "note": f.get("note"),
        })
    options = []
    for o in alert.get("therapy_options", []):
        options.append({
            "name": o["name"],
            "kind": o["kind"],
            "reference": o["reference"],
            "evidence_level": o.get("evidence_level"),
            "verified": o.get("verified", True),
        })
    confirmed = alert.get("confirmed")
    return {
        "rule_id": alert["rule_id"],
        "tier": alert["tier"],
        "title": alert["title"],
        "findings": findings,
        "suggested_actions": list(alert.get("suggested_actions", [])),
        "therapy_options": options,
        "evidence": list(alert.get("evidence", [])),
        "evidence_strength": alert.get("evidence_strength"),
        "unverified": bool(alert.get("unverified_knowledge"))
        or any(not o["verified"] for o in options),
        "confirmed": {True: "yes", False: "not yet (confirmation draw pending)", None: None}[
            confirmed
        ],
    }


def _deny_tokens(content: dict[str, Any]) -> set[str]:
    """Strings that must not appear in a subject: IDs, genes, variants, drugs."""
    tokens: set[str] = {content["patient_id"]}
    therapy = content.get("therapy") or {}
    if therapy.get("drug"):
        tokens.add(therapy["drug"])
    alerts = list(content.get("alerts") or [])
    if content.get("alert"):
        alerts.append(content["alert"])
    for alert in alerts:
        for f in alert.get("findings", []):
            tokens.update(x for x in (f.get("gene"), f.get("alteration"), f.get("sample_id")) if x)
        tokens.update(o["name"] for o in alert.get("therapy_options", []))
    return {t.strip() for t in tokens if t and t.strip()}


def subject_leaks(subject: str, content: dict[str, Any]) -> list[str]:
    """The PHI / clinical tokens found in ``subject`` (case-insensitive, whole words).

    Parameters
    ----------
    subject
        A rendered subject line.
    content
        The notification content whose identifiers must stay out of the subject.

    Returns
    -------
    list of str
        Offending tokens; empty when the subject is clean.
    """
    lowered = subject.lower()
    return [token for token in sorted(_deny_tokens(content) | set(_SUBJECT_DENY_WORDS))
            if _whole_word_in(token.lower(), lowered)]


def _whole_word_in(token: str, text: str) -> bool:
    """``token`` occurs in ``text`` not preceded/followed by an ASCII letter or digit.

    Plain string search: a regex per token and message compiled ~4 patterns per email and
    was a visible share of the ``.eml`` write path at cohort size (issue #11 item 3).
    """
    start = text.find(token)
    while start != -1:
        end = start + len(token)
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if not _is_word_char(before) and not _is_word_char(after):
            return True
        start = text.find(token, start + 1)
    return False


def _is_word_char(ch: str) -> bool:
    return ch != "" and ch.isascii() and ch.isalnum()


def render_subject(settings: Settings, ref: str, tier: str,
                   content: dict[str, Any] | None = None) -> str:
    """The fixed, PHI-free subject line.

    Parameters
    ----------
    settings
        ``notify.subject_prefix`` and ``notify.test_mode`` are read.
    ref
        The random alert reference.
    tier
        The highest tier of the message, shown as its word (``FAILURE``, ``WARNING``,
        ``INFO``; issue #14 item 1), followed by "result requires review" (``INFO``:
        "result available for review").
    content
        When given, the rendered subject is checked against its identifiers.

    Raises
    ------
    ConfigError
        When the configured prefix would put an identifier or clinical wording in the subject.
    """
    prefix = " ".join(settings.notify.subject_prefix.split())
    subject = " ".join(_ENV.get_template("subject.txt.j2").render(
        prefix=prefix,
        test=settings.notify.test_mode,
        tier=tier if tier in TIER_WORDS else "INFO",
        wording="result available for review" if tier == "INFO" else "result requires review",
        ref=ref,
    ).split())
    # The random ref is excluded from the check: it is not derived from anything, and a
    # 4-letter group could spell a gene by chance.
    checked = subject.replace(ref, "")
    leaks = subject_leaks(checked, content if content is not None else {"patient_id": ""})
    if leaks:
        raise ConfigError(
            "subject would contain clinical wording or an identifier "
            f"({len(leaks)} token(s)); change the prefix",
            field="notify.subject_prefix",
        )
    return subject


def _same_alert(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same rule and same (gene, alteration, draw) findings: one alert, shown once."""
    def key(x: dict[str, Any]) -> tuple[str, list[tuple[str, str, str]]]:
        return x["rule_id"], sorted({(f.get("gene") or "", f.get("alteration") or "",
                                      f["sample_id"]) for f in x.get("findings", [])})
    return key(a) == key(b)


def _sections(digest: Digest) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(status change view or None, alert views) of a digest, highest tier first.

    A status change lists the alerts that drive it; those already in the digest as alert
    items are not repeated, the others (notified in an earlier run) are shown once, marked
    so (issue #14 item 1: a repeat of an already-notified alert is not re-sent as news).
    """
    status: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = []
    for item in digest.items:
        content = item.content
        if item.kind == "status" and status is None:
            status = {
                "ref": item.ref, "tier": item.tier,
                "status_words": STATUS_WORDS.get(content["status"], content["status"]),
                "previous_status": content.get("previous_status"),
                "previous_status_words": STATUS_WORDS.get(content.get("previous_status") or ""),
            }
        if content.get("alert"):
            alerts.append(dict(_alert_view(content["alert"]), ref=item.ref, earlier=False,
                               raw=content["alert"]))
    for item in digest.items:
        for driving in item.content.get("alerts") or []:
            if not any(_same_alert(driving, a["raw"]) for a in alerts):
                alerts.append(dict(_alert_view(driving), ref=None, earlier=True, raw=driving))
    alerts.sort(key=lambda a: (-TIER_RANK.get(a["tier"], 0), a["earlier"], a["rule_id"]))
    return status, alerts


def render_digest(digest: Digest, settings: Settings, *,
                  chart_cid: str | None = None,
                  ack_urls: dict[str, str] | None = None) -> RenderedMessage:
    """Render a digest (one patient, one channel, one run) into subject, text and HTML.

    Parameters
    ----------
    digest
        From :func:`pipeline.notify.digest.digest_from_rows`.
    settings
        Resolved settings.
    chart_cid
        Content-ID (without angle brackets) of an inline trend chart, if one is attached.
    ack_urls
        Item ref -> signed acknowledgement link (:func:`pipeline.alerts.signing.ack_links`);
        shown in the order of the items (issue #14 item 2).

    Returns
    -------
    RenderedMessage
        The subject carries the highest tier's word and the digest's ref, nothing else.
    """
    lead = digest.lead
    tier = digest.tier
    status, alerts = _sections(digest)
    context = {
        "ref": digest.ref,
        "item_refs": digest.item_refs,
        "test": settings.notify.test_mode,
        "tier": tier,
        "tier_words": TIER_WORDS[tier],
        "failure_meaning": FAILURE_MEANING,
        "patient_id": lead["patient_id"],
        "as_of": lead["as_of"],
        "status_change": status,
        "status_reason": lead.get("status_reason") or "",
        "headline": lead.get("headline") or "",
        "therapy": lead.get("therapy"),
        "alerts": alerts,
        "any_failure": tier == "FAILURE" or any(a["tier"] == "FAILURE" for a in alerts),
        "unverified": any(a["unverified"] for a in alerts),
        "next_draw_due": lead.get("next_draw_due"),
        "caveats": lead.get("caveats") or [],
        "report": lead["report"],
        "config_version": lead["config_version"],
        "kb_version": lead["kb_version"],
        "pipeline_version": lead["pipeline_version"],
        "generated_at": digest.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        "chart_cid": chart_cid,
        "ack_links": [{"ref": i.ref, "label": f"{i.content['alert']['rule_id']} ({i.tier})"
                       if i.content.get("alert") else f"status change ({i.tier})",
                       "url": (ack_urls or {})[i.ref]}
                      for i in digest.items if (ack_urls or {}).get(i.ref)],
    }
    merged = {"patient_id": lead["patient_id"], "therapy": lead.get("therapy"),
              "alerts": [a["raw"] for a in alerts]}
    return RenderedMessage(
        subject=render_subject(settings, digest.ref, tier, merged),
        text=_ENV.get_template("notification.txt.j2").render(**context),
        html=_ENV.get_template("notification.html.j2").render(**context),
    )


def single_digest(content: dict[str, Any], ref: str, *, message_id: str = "",
                  generated_at: datetime | None = None,
                  chart_png: bytes | None = None) -> Digest:
    """A digest of one notification (a row enqueued before digests, or a preview)."""
    item = DigestItem(ref=ref, kind=content["kind"], tier=content["tier"], content=content)
    return Digest(ref=ref, message_id=message_id, channel="email",
                  patient_id=content["patient_id"], items=(item,),
                  generated_at=(generated_at or datetime.now(UTC)).astimezone(UTC),
                  chart_png=chart_png)


def render_notification(content: dict[str, Any], ref: str, settings: Settings, *,
                        generated_at: datetime | None = None,
                        chart_cid: str | None = None) -> RenderedMessage:
    """Render one ledger ``content`` snapshot as a digest of one (see :func:`render_digest`)."""
    return render_digest(single_digest(content, ref, generated_at=generated_at), settings,
                         chart_cid=chart_cid)


def webhook_payload(digest: Digest, settings: Settings, *, include_patient_id: bool = False,
                    include_summary: bool = False) -> dict[str, Any]:
    """The JSON body of a webhook delivery (docs/notifications.md has an example).

    ``text`` is markdown for chat tools (Slack, Mattermost, Teams connector cards); ``ctdna``
    is the structured form. A chat channel is read (and previewed) more widely than a
    team's mailbox, so by default the payload says as much as an email subject: tier,
    references, rule IDs, status words and the report link. ``include_summary`` adds the
    assessment headline and the rule titles (which name genes and variants);
    ``include_patient_id`` the pseudonymous ID. Findings never leave by webhook.
    """
    status, alerts = _sections(digest)
    subject = render_subject(settings, digest.ref, digest.tier)
    url = digest.lead["report"].get("url")
    if url and not include_patient_id and digest.patient_id in url:
        # ctdna names reports patient-<hash>.html; a URL that still carries the ID stays out
        url = None
    report = {"url": url}
    headline = str(digest.lead.get("headline") or "") if include_summary else ""
    lines = [f"**{subject}**"]
    if headline:
        lines.append(headline)
    if status is not None:
        before = status["previous_status_words"] or "first notification"
        lines.append(f"Status: {status['status_words']} (before: {before})")
    lines += [f"- {a['tier']} {a['rule_id']}" + (f": {a['title']}" if include_summary else "")
              + (" (notified earlier)" if a["earlier"] else f" (ref {a['ref']})")
              for a in alerts]
    if report.get("url"):
        lines.append(f"Report: {report['url']}")
    data: dict[str, Any] = {
        "schema": 1,
        "ref": digest.ref,
        "message_id": digest.message_id,
        "tier": digest.tier,
        "test": settings.notify.test_mode,
        "headline": headline or None,
        "status": None if status is None else {
            "ref": status["ref"], "status": digest_status(digest),
            "previous": status["previous_status"]},
        "alerts": [{"ref": a["ref"], "rule_id": a["rule_id"], "tier": a["tier"],
                    "title": a["title"] if include_summary else None,
                    "notified_earlier": a["earlier"]} for a in alerts],
        "report_url": report.get("url"),
        # a date tied to a patient is an identifier element (Safe Harbor): summary only
        "as_of": digest.lead["as_of"] if include_summary else None,
        "config_version": digest.lead["config_version"],
        "kb_version": digest.lead["kb_version"],
        "pipeline_version": digest.lead["pipeline_version"],
    }
    if include_patient_id:
        data["patient_id"] = digest.patient_id
    return {"text": "\n".join(lines), "ctdna": data}


def digest_status(digest: Digest) -> str | None:
    """The assessment status the digest reports (``None`` without a status change)."""
    for item in digest.items:
        if item.kind == "status":
            return str(item.content["status"])
    return None


def sender_domain(address: str) -> str:
    """Domain part of an address for Message-IDs (``localhost`` when there is none)."""
    return address.rsplit("@", 1)[1] if "@" in address else "localhost"


def new_message(settings: Settings, recipients: list[str] | tuple[str, ...], subject: str,
                *, now: datetime | None = None) -> EmailMessage:
    """An empty message with the common headers of every ctdna email.

    ``Auto-Submitted: auto-generated`` (RFC 3834) stops out-of-office replies; Reply-To
    points at the monitored lab mailbox when configured (section 4.2.7).
    """
    msg = EmailMessage()
    msg["From"] = settings.notify.mail_from
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = make_msgid(domain=sender_domain(settings.notify.mail_from))
    if settings.notify.reply_to:
        msg["Reply-To"] = settings.notify.reply_to
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    return msg


def build_digest_email(digest: Digest, recipients: list[str] | tuple[str, ...],
                       settings: Settings) -> EmailMessage:
    """The complete MIME message of one digest.

    Parameters
    ----------
    digest
        The digest (its Message-ID, fixed at enqueue, becomes the ``Message-ID`` header).
    recipients
        ``To`` addresses (one care team's distribution list).
    settings
        Resolved settings.

    Returns
    -------
    EmailMessage
        ``multipart/alternative`` (text, HTML; the trend chart inline in the HTML part as
        ``multipart/related``, never an attachment), with ``X-Ctdna-Ref`` (the digest's
        ref) and ``X-Ctdna-Items`` (the refs of every alert in it).
    """
    chart_cid = make_msgid(domain=sender_domain(settings.notify.mail_from))[1:-1] \
        if digest.chart_png else None
    from pipeline.alerts.signing import ack_links

    urls = ack_links(digest.item_refs, ", ".join(recipients), settings,
                     now=digest.generated_at)
    rendered = render_digest(digest, settings, chart_cid=chart_cid, ack_urls=urls)
    msg = new_message(settings, recipients, rendered.subject, now=digest.generated_at)
    if digest.message_id:
        del msg["Message-ID"]
        msg["Message-ID"] = digest.message_id
    msg["X-Ctdna-Ref"] = digest.ref
    msg["X-Ctdna-Items"] = ", ".join(digest.item_refs)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    if digest.chart_png and chart_cid:
        html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        assert isinstance(html_part, EmailMessage)  # parts of an EmailMessage are EmailMessages
        html_part.add_related(digest.chart_png, maintype="image", subtype="png",
                              cid=f"<{chart_cid}>", disposition="inline")
    return msg


def build_email(content: dict[str, Any], ref: str, recipients: list[str] | tuple[str, ...],
                settings: Settings, *, chart_png: bytes | None = None,
                now: datetime | None = None) -> EmailMessage:
    """The MIME message of a single notification (a digest of one; previews and tests)."""
    return build_digest_email(single_digest(content, ref, generated_at=now,
                                            chart_png=chart_png), recipients, settings)
