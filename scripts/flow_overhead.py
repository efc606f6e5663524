"""Prefect's share of a surveillance run (issue #11 item 5; docs/performance.md).

Runs the same inbox once through the Prefect flow and once through the very same task
bodies called without Prefect (each task's ``.fn``, in the flow's order), each on a fresh
SQLite store, outbox and reports folder, and prints the wall times as JSON::

    .venv/bin/python scripts/make_cohort.py /tmp/op/c500 --patients 42 --draws 12 \
        --layout per-sample
    PREFECT_API_URL=http://127.0.0.1:4200/api \
        .venv/bin/python scripts/flow_overhead.py /tmp/op/c500 --mode both

``--mode flow`` or ``--mode plain`` runs one side only (for paired whole-process timing,
e.g. alternating ``/usr/bin/time -v ... --mode flow`` and ``... --mode plain`` runs). With
``PREFECT_API_URL`` set the server's start is not in the flow's time (a configured
server); without it Prefect's temporary server is started first and excluded from the
flow's time too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _fresh(work: Path, tag: str) -> dict[str, Path]:
    folder = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))
    os.environ["CTDNA_DB_URL"] = f"sqlite:///{folder / 'store.sqlite'}"
    return {"outbox": folder / "outbox", "reports": folder / "reports"}


def run_plain(inbox: Path, work: Path) -> dict[str, Any]:
    """The flow's steps without Prefect: every task body called directly, same order."""
    from flows import tasks
    from pipeline.config import load_settings

    where = _fresh(work, "plain")
    started = time.perf_counter()
    settings = load_settings()
    quarantine_dir = str(Path(settings.paths.quarantine).resolve())
    tasks.prepare_store_task.fn()
    scan = tasks.scan_inbox_task.fn(str(inbox), False, False)
    processed = []
    for path in scan.therapies:
        tasks.ingest_therapies_task.fn(str(path), scan.fingerprints[str(path)], "plain",
                                       False, quarantine_dir)
        processed.append((str(path), "therapies", scan.fingerprints[str(path)], "ok"))
    ingested = 0
    for path in scan.manifests:
        report = tasks.ingest_manifest_task.fn(str(path), scan.fingerprints[str(path)],
                                               "plain", False, None, quarantine_dir)
        ingested += len(report.ingested)
        processed.append((str(path), "manifest", scan.fingerprints[str(path)], "ok"))
    queue = tasks.pending_patients_task.fn([], "plain")
    results = tasks.evaluate_task.fn(queue["patients"])
    paths = tasks.write_reports_task.fn(results, str(where["reports"]))
    tasks.write_cohort_task.fn(str(where["reports"]))
    enqueued = tasks.enqueue_alerts_task.fn(results, paths)
    delivered = tasks.deliver_alerts_task.fn("plain", str(where["outbox"]))
    tasks.mark_processed_task.fn(processed, "plain")
    return {"seconds": round(time.perf_counter() - started, 2), "ingested": ingested,
            "evaluated": len(results), "reports": len(paths),
            "notifications": enqueued["created"], "sent": delivered["sent"]}


def run_flow(inbox: Path, work: Path) -> dict[str, Any]:
    """The surveillance flow (server already up: its start is not counted)."""
    from flows.local_server import local_prefect
    from flows.surveillance import summary_of, surveillance_run

    where = _fresh(work, "flow")
    with local_prefect():
        started = time.perf_counter()
        state = surveillance_run(inbox=str(inbox), outbox=str(where["outbox"]),
                                 reports=str(where["reports"]), return_state=True)
        seconds = time.perf_counter() - started
    summary = summary_of(state)
    return {"seconds": round(seconds, 2), "ingested": summary.ingested,
            "evaluated": summary.patients_evaluated, "reports": summary.reports_written,
            "notifications": summary.notifications_created, "sent": summary.emails_sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inbox", type=Path)
    parser.add_argument("--mode", choices=["both", "flow", "plain"], default="both")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the stores (default: a new temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="flow-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    if args.mode in ("both", "plain"):
        out["plain"] = run_plain(args.inbox.resolve(), work)
    if args.mode in ("both", "flow"):
        out["flow"] = run_flow(args.inbox.resolve(), work)
    if args.mode == "both":
        flow, plain = out["flow"]["seconds"], out["plain"]["seconds"]
        out["prefect_share"] = round((flow - plain) / flow, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
