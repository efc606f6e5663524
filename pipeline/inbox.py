"""The lab's inbox: finding new manifests without ever touching the lab's files.

A manifest is any ``.csv`` under the inbox whose header has the four required manifest
columns; a therapy history is any ``.csv`` with the three therapy columns (contract). A
file is *new* when its fingerprint (SHA-256 of its bytes plus size and mtime of every file
a manifest names) has not been processed before. Bad files are *copied* to quarantine with
the reason beside them; the originals stay where the lab put them.

Confinement (issue #10 item 4): a ``.csv`` whose real path (symlinks resolved) lies outside
the inbox is refused by the scan, never read; quarantine copies only files inside the
batch folder, so a manifest row naming ``/etc/shadow`` can never pull it into quarantine.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from pipeline.io.manifest import RowRejection, is_manifest, is_therapy_history
from pipeline.store import models
from pipeline.store.repository import Store, now_utc


@dataclass
class InboxScan:
    """New or changed inbox files (paths), and how many were skipped as already processed."""

    manifests: list[Path] = field(default_factory=list)
    therapies: list[Path] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)
    already_processed: int = 0
    rejected: list[RowRejection] = field(default_factory=list)  # refused, never read


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves (symlinks included) to ``root`` or below it."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == base or real.is_relative_to(base)


def _referenced_files(manifest: Path) -> list[Path]:
    try:
        with manifest.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            names = [((row.get("path") or row.get("PATH") or "").strip()) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [manifest.parent / name for name in names if name]


def fingerprint(path: Path, *, is_manifest_file: bool) -> str:
    """SHA-256 of the file, plus size/mtime of each variant file a manifest names."""
    digest = hashlib.sha256(path.read_bytes())
    if is_manifest_file:
        for referenced in sorted(_referenced_files(path)):
            try:
                stat = referenced.stat()
                digest.update(f"{referenced}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"{referenced}:missing".encode())
    return digest.hexdigest()


def scan_inbox(inbox: Path, store: Store | None, *, force: bool = False) -> InboxScan:
    """List the manifests and therapy histories under ``inbox`` that still need processing.

    Parameters
    ----------
    inbox
        The lab's delivery folder (searched recursively; never modified).
    store
        Used to skip files already processed with the same fingerprint; ``None`` (dry
        runs) lists everything.
    force
        List every file, processed or not.
    """
    scan = InboxScan()
    seen: set[tuple[str, str]] = set()
    if store is not None and not force:
        with store.engine.connect() as conn:
            seen = {(r.path, r.fingerprint) for r in conn.execute(
                sa.select(models.inbox_files.c.path, models.inbox_files.c.fingerprint))}
    for path in sorted(p for p in inbox.rglob("*") if p.is_file() and p.suffix.lower() == ".csv"):
        if not inside(path, inbox):
            scan.rejected.append(RowRejection(
                str(path), f"{path}: symlink resolves outside the inbox "
                f"({os.path.realpath(path)}); not read"))
            continue
        manifest = is_manifest(path)
        therapy = not manifest and is_therapy_history(path)
        if not (manifest or therapy):
            continue
        key = fingerprint(path, is_manifest_file=manifest)
        if (str(path.resolve()), key) in seen:
            scan.already_processed += 1
            continue
        scan.fingerprints[str(path)] = key
        (scan.manifests if manifest else scan.therapies).append(path)
    return scan


def mark_processed(store: Store, path: Path, kind: str, key: str, outcome: str,
                   run_id: str | None) -> None:
    """Record that an inbox file was processed (idempotent under concurrent runs)."""
    try:
        with store.engine.begin() as conn:
            conn.execute(models.inbox_files.insert().values(
                path=str(path.resolve()), kind=kind, fingerprint=key, processed_at=now_utc(),
                run_id=run_id, outcome=outcome))
    except IntegrityError:
        pass  # another run recorded the same file and fingerprint first


def quarantine(source: Path, error: str, quarantine_dir: Path, *, root: Path) -> Path:
    """Copy a bad input to quarantine with its reason beside it; the original is untouched.

    Parameters
    ----------
    source
        The rejected file (a manifest, therapy history or variant file).
    error
        Its one-line reason, written beside the copy.
    quarantine_dir
        Where copies go (``paths.quarantine``).
    root
        The delivered batch (the manifest's folder, inside the inbox): only a file whose
        real path lies inside it is copied; anything else gets the reason file only.
    """
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    folder = quarantine_dir / stamp
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    copied = source.is_file() and inside(source, root)
    if copied:
        shutil.copy2(source, target)
    note = "" if copied or not source.exists() else " (not copied: outside the inbox batch)"
    (folder / f"{source.name}.error.txt").write_text(error + note + "\n", encoding="utf-8")
    return target
