"""Record the CLI progress display of a real run for docs/img/cli-progress.png (#12 item 4).

Runs the stages of ``ctdna run`` (ingest, evaluate, reports, delivery to the ``.eml``
outbox) on the bundled demo inbox, through the same library calls and the same
:class:`pipeline.cli.progress.RichProgress` display as the command line, on a recording
rich console; saves an SVG, then converts it with Debian's headless Chromium::

    .venv/bin/python scripts/cli_screenshot.py /tmp/cli-shot
    chromium --headless --no-sandbox --hide-scrollbars --window-size=1238,197 \
        --screenshot=docs/img/cli-progress.png /tmp/cli-shot/cli-progress.svg
"""

from __future__ import annotations

import io
import sys
from datetime import date
from pathlib import Path


def main(workdir: Path) -> Path:
    from rich.console import Console

    from pipeline.cli.main import version_line
    from pipeline.cli.progress import RichProgress
    from pipeline.config import load_settings
    from pipeline.demo.data import write_demo_inbox
    from pipeline.ingest import ingest_manifest, ingest_therapies
    from pipeline.knowledge import load_knowledge_base
    from pipeline.notify import deliver_pending, enqueue_for_assessment, transport_from_settings
    from pipeline.progress import tracked
    from pipeline.service import evaluate_patients, patient_report_name, write_patient_report
    from pipeline.store.repository import Store

    workdir.mkdir(parents=True, exist_ok=True)
    inbox, config = write_demo_inbox(workdir, date(2026, 11, 21))
    batch = inbox / "batch-001"
    settings = load_settings(config, env={})
    store = Store(f"sqlite:///{workdir / 'store.sqlite'}")
    kb = load_knowledge_base()
    # The live display redraws many frames; it runs on an off-screen terminal, and the
    # recording console gets its last frame (what stays on the user's screen).
    live = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="truecolor")
    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(f"[bold]{version_line()}[/]  demo inbox {batch.name}: progress on stderr")
    with RichProgress(console=live) as progress:
        ingest_therapies(batch / "therapies.csv", store)
        report = ingest_manifest(batch / "manifest.csv", store, settings, kb, progress=progress)
        results = evaluate_patients(store, settings, kb, None, date(2026, 11, 21),
                                    progress=progress)
        reports = workdir / "reports"
        reports.mkdir(exist_ok=True)
        for result in tracked(results, "reports", progress):
            pid = result.assessment.patient_id
            path = write_patient_report(store, settings, kb, pid,
                                        reports / patient_report_name(pid),
                                        assessment=result.assessment)
            enqueue_for_assessment(store.engine, result.assessment, result.assessment_id,
                                   result.care_team, settings, report_location=str(path))
        transport = transport_from_settings(settings, outbox=workdir / "outbox")
        delivery = deliver_pending(store.engine, settings, transport, "screenshot",
                                   progress=progress)
    console.print(progress.bars.get_renderable())
    console.print(f"samples: {len(report.ingested)} ingested, {len(report.rejected)} rejected; "
                  f"patients evaluated: {len(results)}; reports: {len(results)}; "
                  f".eml written: {len(delivery.sent)}")
    out = workdir / "cli-progress.svg"
    console.save_svg(str(out), title="ctdna: progress display")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "cli-shot").resolve()))
