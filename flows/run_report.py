"""What a run shows in the Prefect UI: its name and its artifacts (issue #12, item 3).

Run names carry the scheduled time only (``surveillance-2026-12-02T0700``, in the schedule's
timezone), never patient or sample identifiers. The markdown and table artifacts are built
from the run summary's counts; rejection reasons are shown with the sample accession, the
file path and its name replaced, because the artifacts are visible to every Prefect user.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.config import load_settings
from pipeline.errors import CtdnaError


def surveillance_run_name() -> str:
    """``surveillance-YYYY-MM-DDTHHMM``: the run's scheduled start in the schedule timezone."""
    from prefect.runtime import flow_run

    start = flow_run.scheduled_start_time or datetime.now(ZoneInfo("UTC"))
    try:
        tz = ZoneInfo(load_settings().schedule.timezone)
    except (CtdnaError, ValueError):  # a config error is reported by the run itself
        tz = ZoneInfo("UTC")
    return f"surveillance-{start.astimezone(tz):%Y-%m-%dT%H%M}"


def redact_rejection(error: str, path: str, sample_id: str | None) -> str:
    """A rejection reason without the sample accession, the file path or its name."""
    text = error
    for secret, stand_in in ((path, "<file>"), (Path(path).name, "<file>"),
                             (sample_id, "<sample>")):
        if secret:
            text = re.sub(re.escape(secret), stand_in, text)
    return text


#: Why a stored patient was not evaluated by a run that did not report its own reasons:
#: only patients marked in the work queue (new or amended draws, therapy change, forced
#: re-run) are evaluated (issue #10 item 1; #11 item 2).
NOT_MARKED = "no new or amended data since the last evaluation (not in the work queue)"


def tier_changes(pairs: Iterable[tuple[str | None, str]]) -> dict[str, int]:
    """Counts of status transitions ``FROM->TO`` (``none`` = first assessment).

    ``pairs`` are (previous status, new status) of the evaluated patients; unchanged
    statuses are not counted. Counts only: safe for artifacts and logs (no patient IDs).
    """
    counts = Counter(f"{before or 'none'}->{after}" for before, after in pairs
                     if before != after)
    return dict(sorted(counts.items()))


def skipped_patients(cohort_size: int, evaluated: int,
                     reported: dict[str, int] | None = None) -> dict[str, int]:
    """Stored patients this run did not evaluate, by reason.

    Parameters
    ----------
    cohort_size
        Patients in the store when the run chose whom to evaluate.
    evaluated
        Patients evaluated by the run.
    reported
        Reasons and counts reported by the evaluation use case itself (incremental
        evaluation, #11 item 2); when given they are used as they are.
    """
    if reported is not None:
        return {reason: int(n) for reason, n in reported.items() if n}
    skipped = max(cohort_size - evaluated, 0)
    return {NOT_MARKED: skipped} if skipped else {}


def summary_rows(summary: Any) -> list[dict[str, Any]]:
    """The table artifact's rows: :func:`count_rows`, then one row per tier change
    (``tier change FROM->TO``), per evaluation reason (``evaluated: <reason>``) and per
    skip reason (``skipped: <reason>``)."""
    rows = count_rows(summary)
    rows += [{"quantity": f"tier change {change}", "count": n}
             for change, n in getattr(summary, "tier_changes", {}).items()]
    rows += [{"quantity": f"evaluated: {reason}", "count": n}
             for reason, n in getattr(summary, "evaluated_reasons", {}).items()]
    rows += [{"quantity": f"skipped: {reason}", "count": n}
             for reason, n in getattr(summary, "skipped_reasons", {}).items()]
    return rows


def count_rows(summary: Any) -> list[dict[str, Any]]:
    """The run's counts as table rows (``quantity``, ``count``); fields absent are skipped."""
    wanted = [
        ("manifests new", "manifests"), ("therapy files new", "therapy_files"),
        ("files already processed", "already_processed"), ("samples ingested", "ingested"),
        ("samples amended", "amended"), ("samples unchanged", "unchanged"),
        ("samples rejected", "rejected"), ("patients evaluated", "patients_evaluated"),
        ("patients skipped", "patients_skipped"), ("tier changes", "tier_changes"),
        ("reports written", "reports_written"), ("reports unchanged", "reports_unchanged"),
        ("notifications created", "notifications_created"),
        ("notifications sent", "emails_sent"),
        ("notifications deferred", "emails_deferred"),
        ("notifications dead-lettered", "emails_dead_lettered"),
    ]
    rows = []
    for label, attr in wanted:
        if not hasattr(summary, attr):  # fields added by other work (#10) are optional
            continue
        value = getattr(summary, attr)
        if isinstance(value, dict):
            count = sum(value.values())
        elif isinstance(value, list):
            count = len(value)
        else:
            count = int(value)
        rows.append({"quantity": label, "count": count})
    return rows


def summary_markdown(summary: Any) -> str:
    """The run summary as markdown: counts, rejection reasons (redacted), report links."""
    lines = ["## Surveillance run", "", f"Run id (= flow-run id): `{summary.run_id}`", ""]
    if summary.dry_run:
        lines += ["**Dry run**: nothing stored or sent.", ""]
    lines += ["| | count |", "|---|---:|"]
    lines += [f"| {row['quantity']} | {row['count']} |" for row in count_rows(summary)]
    lines += _breakdown("Tier changes", "change", getattr(summary, "tier_changes", {}))
    lines += _breakdown("Patients evaluated", "reason",
                        getattr(summary, "evaluated_reasons", {}))
    lines += _breakdown("Patients skipped", "reason", getattr(summary, "skipped_reasons", {}))
    reasons = getattr(summary, "rejected_reasons", [])
    if reasons:
        lines += ["", "### Rejected inputs", ""]
        lines += [f"- {reason}" for reason in reasons]
        if summary.quarantine_dir:
            lines += ["", f"Copies of the bad inputs: `{summary.quarantine_dir}` "
                          "(originals untouched)."]
    if summary.emails_pending:
        lines += ["", "Some notifications are still pending; the next run retries them."]
    links = []
    if summary.reports_dir:
        cohort = Path(summary.reports_dir) / "cohort.html"
        links.append(f"- Cohort report: [{cohort}]({cohort.as_uri()})")
        links.append(f"- Reports folder: `{summary.reports_dir}`")
    if summary.outbox:
        links.append(f"- Email files (no SMTP configured): `{summary.outbox}`")
    if links:
        lines += ["", "### Reports", "", *links]
    return "\n".join(lines) + "\n"


def _breakdown(title: str, what: str, counts: dict[str, int]) -> list[str]:
    """A markdown section ``title`` with a two-column table of ``counts`` (none: nothing)."""
    if not counts:
        return []
    return ["", f"### {title}", "", f"| {what} | patients |", "|---|---:|",
            *[f"| {key} | {n} |" for key, n in counts.items()]]


def publish_run_artifacts(summary: Any) -> None:
    """Attach the markdown and the table artifact to the current flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown=summary_markdown(summary), key="ctdna-run-summary",
                             description="ctdna run summary (counts only, no patient data)")
    create_table_artifact(table=summary_rows(summary), key="ctdna-run-counts",
                          description="ctdna run counts")
