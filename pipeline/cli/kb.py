"""``ctdna kb``: the knowledge-base curator's commands (issue #13 item 4).

Thin edge: ``show``, ``audit`` and ``diff`` call :mod:`pipeline.knowledge.audit` and
:mod:`pipeline.knowledge.diff`; this module only parses arguments and formats output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.jsonout import print_json
from pipeline.cli.main import ConfigOption, DbOption, _parse_date, edge

app: typer.Typer = typer.Typer(
    name="kb", help="Review the knowledge base: show, audit, diff (issue #13).",
    no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _kb(config: Path | None, path: Path | None = None) -> tuple[Any, Any]:
    from pipeline.config import load_settings
    from pipeline.knowledge import knowledge_base_for

    settings = load_settings(config)
    return settings, knowledge_base_for(settings, path)


@app.command()
@edge
def show(
    alteration: Annotated[str, typer.Argument(help="kb_id (ALK:G1202R), 'GENE ALTERATION' or "
                                              "an ALK short name (L1196M+G1202R)")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """What the knowledge base says: category, activity per TKI with labels, options."""
    from pipeline.knowledge.audit import show as show_entry

    _settings, kb = _kb(config)
    data = show_entry(kb, alteration)
    if as_json:
        print_json(data)
        return
    typer.echo(f"{data['kb_id']}  [{data['category']}]  label {data['evidence_label']}  "
               f"(KB {data['kb_version']})")
    typer.echo(f"  sources: {data['citations']}")
    if data["notes"]:
        typer.echo(f"  notes: {data['notes']}")
    for cell in data["activity"]:
        typer.echo(f"  {cell['drug']:<13} {cell['activity']:<8} {cell['evidence_label']:<20} "
                   f"{cell['reported']}  | {cell['citation']}")
    for title, key in (("options, ALK-TKI-naive", "options_first_line"),
                       ("options after alectinib", "options_after_alectinib")):
        if data[key] is None:
            continue
        typer.echo(f"  {title}:")
        for o in data[key] or [{"name": "(none)", "kind": "", "verified": True}]:
            flag = "" if o["verified"] else "  [UNVERIFIED]"
            typer.echo(f"    - {o['name']} ({o['kind']}){flag}")


@app.command()
@edge
def audit(
    max_age_years: Annotated[int | None, typer.Option(
        help="Flag sources older than this (default: knowledge.audit_max_source_age_years)")]
    = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Every unverified, secondary-only or undated item; unchecked trial identifiers; old
    sources."""
    from pipeline.knowledge.audit import audit as run_audit

    settings, kb = _kb(config)
    years = max_age_years or settings.knowledge.audit_max_source_age_years
    result = run_audit(kb, years)
    if as_json:
        print_json(result)
        return
    typer.echo(f"knowledge base {result['kb_version']}: "
               + ", ".join(f"{k} {v}" for k, v in result["counts"].items()))
    for section in ("unverified", "secondary", "trials_unchecked", "undated_sources",
                    "old_sources"):
        if result[section]:
            typer.echo(f"{section}:")
        for item in result[section]:
            typer.echo(f"  {item['kind']:<14} {item['id']}  [{item['label'] or '-'}]  "
                       f"{item['detail']}")


@app.command()
@edge
def diff(
    old: Annotated[Path, typer.Argument(help="Old knowledge-base folder")],
    new: Annotated[Path, typer.Argument(help="New knowledge-base folder")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Evaluation date of the dry "
                                              "run (YYYY-MM-DD; default today)")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """What changed between two KB versions and which stored assessments would change."""
    from pipeline.config import load_settings
    from pipeline.errors import InputError
    from pipeline.knowledge import load_knowledge_base
    from pipeline.knowledge.diff import data_diff, reevaluation_dry_run

    for folder, name in ((old, "OLD"), (new, "NEW")):
        if not (folder / "manifest.yaml").is_file():
            raise InputError(f"{folder}: not a knowledge-base folder (no manifest.yaml)",
                             field=name)
    settings = load_settings(config)
    kb_old, kb_new = load_knowledge_base(old), load_knowledge_base(new)
    result: dict[str, Any] = {"data": data_diff(kb_old, kb_new)}
    if db is not None or settings.database_url:
        from pipeline.store.repository import Store

        store = Store(db or settings.database_url)
        result["reevaluation"] = reevaluation_dry_run(store, settings, kb_old, kb_new,
                                                      _parse_date(as_of, "--as-of"))
    if as_json:
        print_json(result)
        return
    data = result["data"]
    typer.echo(f"{data['old_version']} -> {data['new_version']}: "
               + ", ".join(f"{k} {v}" for k, v in data["counts"].items()))
    for section, counts in data["counts"].items():
        if not counts:
            continue
        part = data[section]
        for key in part["added"]:
            typer.echo(f"  + {section}: {key}")
        for key in part["removed"]:
            typer.echo(f"  - {section}: {key}")
        for change in part["changed"]:
            typer.echo(f"  ~ {section}: {change['id']} ({', '.join(change['fields'])})")
    rerun = result.get("reevaluation")
    if rerun is not None:
        typer.echo(f"re-evaluation dry run: {len(rerun['changed'])} of {rerun['patients']} "
                   "patients would change (nothing stored)")
        for row in rerun["changed"]:
            typer.echo(f"  {row['patient_id']}: {', '.join(row['fields'])}")
