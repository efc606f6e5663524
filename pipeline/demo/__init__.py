"""``ctdna demo``: the whole pipeline on bundled, synthetic demo data.

The demo inbox is generated (see :mod:`pipeline.demo.data`) with dates relative to today,
so the cohort page always looks like a live lab's morning view. Everything runs with
embedded defaults: an SQLite store in the work folder, a local Prefect (ephemeral API),
and ``.eml`` files instead of SMTP.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from pipeline.demo.data import write_demo_inbox


def run_demo(workdir: Path, *, today: date | None = None) -> Iterator[str]:
    """Generate the demo inbox, run one surveillance flow over it, say where things went."""
    from flows.surveillance import run_surveillance_locally

    workdir = workdir.resolve()
    inbox, config = write_demo_inbox(workdir, today or date.today())
    db_url = f"sqlite:///{workdir / 'ctdna-demo.sqlite'}"
    reports, outbox = workdir / "reports", workdir / "outbox"
    yield f"demo inbox written to {inbox} (synthetic patients DEMO-001..DEMO-004)"
    yield "running the surveillance flow (local Prefect; the first start takes ~20 s) ..."
    # The demo must not pick up a lab's SMTP settings or database from the environment.
    for key in [k for k in os.environ if k.startswith("CTDNA_SMTP_")] + ["CTDNA_DB_URL"]:
        os.environ.pop(key, None)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    summary = run_surveillance_locally(inbox=inbox, outbox=outbox, reports=reports,
                                       db_url=db_url, config_file=config)
    yield summary.describe()
    yield f"store: {db_url}"
    yield f"clinician reports: {reports}/patient-<hash>.html (one per patient)"
    yield f"cohort overview: {reports / 'cohort.html'}"
    yield f"alert emails (.eml, no SMTP configured): {outbox}"
    yield (f"try: ctdna evaluate --db {db_url} --config {config}  |  "
           f"ctdna observations --patient DEMO-001 --json --db {db_url}")
