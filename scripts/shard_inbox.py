"""Split a generated inbox (scripts/make_cohort.py) by patient shard (issue #11 item 6).

``--into files``: one inbox with K manifests (``manifest-1.csv`` ...): the independent inbox
files a run ingests in parallel through its task runner. ``--into folders``: K inboxes
``shard-1/`` ... each with its patients' manifest rows, therapy lines and variant tables:
the inbox shards two workers process in two concurrent flow runs::

    .venv/bin/python scripts/shard_inbox.py /tmp/op/c500 /tmp/op/c500x2 --shards 2 --into files

Patients are dealt round-robin in sorted order; a patient's rows never straddle shards.
Synthetic data only; the source inbox is read, never modified.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def shard_inbox(source: Path, out: Path, shards: int, into: str) -> list[Path]:
    """Write the shards; returns the manifests (``files``) or inbox folders (``folders``)."""
    header, rows = _read(source / "manifest.csv")
    therapy_header, therapies = _read(source / "therapies.csv")
    patients = sorted({row["patient_id"] for row in rows})
    shard_of = {pid: i % shards for i, pid in enumerate(patients)}
    written: list[Path] = []
    for k in range(shards):
        mine = [row for row in rows if shard_of[row["patient_id"]] == k]
        if into == "files":
            target = out / f"manifest-{k + 1}.csv"
            _write(target, header, mine)
            written.append(target)
            continue
        folder = out / f"shard-{k + 1}"
        _write(folder / "manifest.csv", header, mine)
        _write(folder / "therapies.csv", therapy_header,
               [t for t in therapies if shard_of.get(t["patient_id"]) == k])
        for name in sorted({row["path"] for row in mine}):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, folder / name)
        written.append(folder)
    if into == "files":
        shutil.copy2(source / "therapies.csv", out / "therapies.csv")
        for name in sorted({row["path"] for row in rows}):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, out / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--into", choices=["files", "folders"], default="files")
    args = parser.parse_args()
    for path in shard_inbox(args.source, args.out, args.shards, args.into):
        print(path)


if __name__ == "__main__":
    main()
