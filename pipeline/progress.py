"""A tiny progress protocol for long batch work (issue #12 item 4).

Library functions (ingest, evaluate, reports, delivery) accept an optional ``progress``
keyword and report through it; they never print. The command-line edge supplies the display
(a rich bar on a terminal, plain lines otherwise, see :mod:`pipeline.cli.progress`). When
no reporter is passed, the *ambient* one set with :func:`use` is used: that is how ``ctdna
run`` shows the progress of library calls made inside Prefect tasks without passing a
display object through task parameters. The default is :data:`NULL`, which does nothing.

Counts are in items of the task (samples, patients, reports, emails).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Progress(Protocol):
    """Receives the progress of one task at a time per thread.

    ``start`` opens a task (``total`` items, ``None`` when unknown), ``advance`` counts
    ``n`` finished items, ``finish`` closes it.
    """

    def start(self, task: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """The default reporter: does nothing."""

    def start(self, task: str, total: int | None = None) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None

    def finish(self) -> None:
        return None


NULL: Progress = NullProgress()

# A process-wide (not context-local) default: Prefect runs submitted tasks in worker
# threads, which must see the reporter the CLI installed for ``ctdna run``.
_ambient: Progress = NULL


def resolve(progress: Progress | None) -> Progress:
    """``progress`` itself, else the ambient reporter (see :func:`use`), else :data:`NULL`."""
    return progress if progress is not None else _ambient


@contextmanager
def use(progress: Progress) -> Iterator[Progress]:
    """Install ``progress`` as the ambient reporter for the duration of the block."""
    global _ambient
    saved, _ambient = _ambient, progress
    try:
        yield progress
    finally:
        _ambient = saved


def tracked(items: Sequence[T] | Iterable[T], task: str,
            progress: Progress | None = None, *, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` and count each one as done when the loop body finishes.

    One line in a library loop: ``for row in tracked(rows, "ingest", progress):``. A
    ``continue`` in the body still counts the item; the task is finished when the loop ends,
    also on ``break`` or an exception.
    """
    reporter = resolve(progress)
    if total is None and isinstance(items, Sequence):
        total = len(items)
    reporter.start(task, total)
    try:
        for item in items:
            yield item
            reporter.advance(1)
    finally:
        reporter.finish()
