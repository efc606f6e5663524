"""The floor under a Python ingest of a large VCF (issue #11 item 1; docs/performance.md).

``ctdna ingest`` of a 200,000-record VCF is compared with ``bcftools query`` reading the
same fields. This script measures, each in a fresh process so nothing is warm, the parts
of an ingest that no ctdna code can remove while the stack stays Python + pysam + SQLite:

* ``imports``: starting Python and importing what an ingest needs (pandas, numpy,
  SQLAlchemy, pysam, pydantic);
* ``htslib``: pysam iterating every record (htslib's own parse, no field read);
* ``sqlite``: one ``executemany`` of the file's stored observation rows (the columns an
  ingest writes for it) into a fresh table with the store's index, in one transaction.

Usage (after ``scripts/make_cohort.py OUT --patients 0 --vcf-records 200000`` and one
``ctdna ingest`` of ``OUT/big-manifest.csv`` into ``STORE``)::

    .venv/bin/python scripts/vcf_floor.py OUT/big.vcf.gz STORE.sqlite

It prints one JSON object of wall-clock seconds (the median of ``--runs`` runs each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

IMPORTS = "import pandas, numpy, sqlalchemy, pysam, pydantic"

HTSLIB = """
import sys, pysam
pysam.set_verbosity(0)
n = sum(1 for _ in pysam.VariantFile(sys.argv[1]))
"""

SQLITE = """
import sqlite3, sys, tempfile, os
source = sqlite3.connect(sys.argv[2])
names = [r[1] for r in source.execute("PRAGMA table_info(observations)") if r[1] != "id"]
filled = [c for c in names
          if source.execute(f"SELECT 1 FROM observations WHERE {c} IS NOT NULL LIMIT 1").fetchone()]
rows = source.execute(f"SELECT {', '.join(filled)} FROM observations").fetchall()
ddl = [r[0] for r in source.execute(
    "SELECT sql FROM sqlite_master WHERE tbl_name = 'observations' AND sql IS NOT NULL")]
folder = tempfile.mkdtemp()
target = sqlite3.connect(os.path.join(folder, "t.sqlite"))
target.execute("PRAGMA journal_mode=WAL")
for statement in ddl:
    target.execute(statement)  # (SQLite checks foreign keys only when asked)
import time
start = time.perf_counter()
target.executemany(f"INSERT INTO observations ({', '.join(filled)}) "
                   f"VALUES ({', '.join('?' * len(filled))})", rows)
target.commit()
print(time.perf_counter() - start)
"""


def _wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("vcf")
    parser.add_argument("store", help="a store holding the VCF's ingested observations")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    figures: dict[str, list[float]] = {"imports": [], "htslib": [], "sqlite": []}
    for _ in range(args.runs):
        figures["imports"].append(_wall([python, "-c", IMPORTS]))
        bare = _wall([python, "-c", "import pysam"])
        figures["htslib"].append(_wall([python, "-c", HTSLIB, args.vcf]) - bare)
        out = subprocess.run([python, "-c", SQLITE, args.vcf, args.store], check=True,
                             capture_output=True, text=True).stdout
        figures["sqlite"].append(float(out))
    medians = {k: round(statistics.median(v), 3) for k, v in figures.items()}
    medians["sum"] = round(sum(medians.values()), 3)
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
