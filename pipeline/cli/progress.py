"""Progress displays for the command line (issue #12 item 4).

The library reports through :class:`pipeline.progress.Progress`; this module draws it on
stderr, so that ``--json`` output on stdout stays clean:

* a terminal gets rich progress bars (:class:`RichProgress`);
* anything else (a pipe, a log file, cron) gets plain lines (:class:`PlainProgress`):
  one when a task starts, one per 10 % step, one when it ends, with the elapsed time.

``CTDNA_PROGRESS`` overrides the choice: ``rich``, ``plain`` or ``none``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from pipeline.progress import NULL, Progress, use

MODES = ("auto", "rich", "plain", "none")


class PlainProgress:
    """Plain progress lines (``ctdna: ingest: 20/200 (10%)``) for logs and pipes.

    Parameters
    ----------
    stream
        Where the lines go (stderr by default).
    step
        Print a line each time this fraction of the total is crossed.
    """

    def __init__(self, stream: IO[str] | None = None, step: float = 0.1) -> None:
        self.stream = stream
        self.steps = max(1, round(1 / step))
        self._local = threading.local()
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(f"ctdna: {line}\n")
            stream.flush()

    def start(self, task: str, total: int | None = None) -> None:
        self._local.state = {"task": task, "total": total, "done": 0, "shown": 0,
                             "t0": time.monotonic()}
        self._write(f"{task}: started" + (f", {total} to do" if total is not None else ""))

    def advance(self, n: int = 1) -> None:
        state = getattr(self._local, "state", None)
        if state is None:
            return
        state["done"] += n
        total = state["total"]
        if total and state["done"] < total:
            # integer step index (no float drift): 0..steps-1 of the total
            reached = state["done"] * self.steps // total
            if reached > state["shown"]:
                state["shown"] = reached
                self._write(f"{state['task']}: {state['done']}/{total} "
                            f"({state['done'] / total:.0%})")

    def finish(self) -> None:
        state = getattr(self._local, "state", None)
        if state is None:
            return
        self._local.state = None
        elapsed = time.monotonic() - state["t0"]
        self._write(f"{state['task']}: {state['done']} done in {elapsed:.1f} s")


class RichProgress:
    """Rich progress bars on the terminal (one bar per task, kept when done)."""

    def __init__(self, console: Any | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBars

        self.console = console or Console(stderr=True)
        self.bars = RichBars(
            SpinnerColumn(), TextColumn("[bold]{task.description:<10}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), console=self.console,
        )
        self._local = threading.local()

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def start(self, task: str, total: int | None = None) -> None:
        self._local.task_id = self.bars.add_task(task, total=total)

    def advance(self, n: int = 1) -> None:
        task_id = getattr(self._local, "task_id", None)
        if task_id is not None:
            self.bars.advance(task_id, n)

    def finish(self) -> None:
        task_id = getattr(self._local, "task_id", None)
        if task_id is None:
            return
        self._local.task_id = None
        task = self.bars.tasks[task_id]
        # A task that ended early (break, error) shows what was done, not a full bar.
        self.bars.update(task_id, total=task.completed)


def choose_mode(env: dict[str, str] | None = None, stream: IO[str] | None = None) -> str:
    """``rich`` on a terminal, ``plain`` otherwise, unless ``CTDNA_PROGRESS`` says."""
    env = dict(os.environ) if env is None else env
    wanted = env.get("CTDNA_PROGRESS", "auto").strip().lower() or "auto"
    if wanted not in MODES:
        wanted = "auto"
    if wanted != "auto":
        return wanted
    stream = stream or sys.stderr
    return "rich" if getattr(stream, "isatty", lambda: False)() else "plain"


@contextmanager
def display(mode: str | None = None) -> Iterator[Progress]:
    """The progress reporter for one command, also installed as the ambient one.

    Yields a :class:`~pipeline.progress.Progress` to pass to library calls; calls that do
    not take one (inside Prefect tasks) find it through :func:`pipeline.progress.resolve`.
    """
    mode = mode or choose_mode()
    if mode == "rich":
        with RichProgress() as reporter, use(reporter):
            yield reporter
    elif mode == "plain":
        plain = PlainProgress()
        with use(plain):
            yield plain
    else:
        yield NULL
