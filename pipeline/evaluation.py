"""A cohort's evaluation from the store, in patient shards on several processes (#11 item 2).

The rules are vectorised over whatever cohort they are given (``evaluate_cohort``); a
10,000-patient cohort still keeps one processor busy for seconds. Every patient's
assessment depends on that patient's rows alone, so the sorted patient list is cut into
contiguous shards: this process evaluates the first while ``run.evaluate_processes - 1``
worker processes each read and evaluate another from the same store (SQLite file or
PostgreSQL, read-only there). The results come back as plain data (the assessment's
``model_dump``, its contract JSON and the sample rows it read) and are rebuilt as the
same :class:`~pipeline.assessment.Assessment` objects, in patient order: the output is
the same as in one process (tests/rules/test_shards.py).

Workers are started with ``spawn`` (safe in a process that runs threads, such as a
Prefect worker); a cohort below :data:`MIN_SHARD_PATIENTS` patients per shard, or an
in-memory store, is evaluated here, where a process start-up would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import TYPE_CHECKING, Any

from pipeline.store.repository import Store

if TYPE_CHECKING:
    from pipeline.assessment import Assessment
    from pipeline.config import Settings
    from pipeline.knowledge import KnowledgeBase

#: Fewest patients worth a worker process (its start-up, about 1.5 s of imports, is paid
#: while this process reads its own shard; below this it does not pay back).
MIN_SHARD_PATIENTS = 2000


class Evaluated:
    """One patient's assessment, its contract JSON and the store rows it read.

    A worker's assessment arrives as its ``model_dump`` and is rebuilt on first use of
    :attr:`assessment` (0.2 ms each: ``ctdna evaluate --json`` prints the payloads and
    never needs the 5,000 objects of a worker's shard).
    """

    __slots__ = ("_assessment", "_dump", "payload", "sample_pks")

    def __init__(self, payload: dict[str, Any], sample_pks: list[int], *,
                 assessment: Assessment | None = None,
                 dump: dict[str, Any] | None = None) -> None:
        if (assessment is None) == (dump is None):
            raise ValueError("give the assessment or its model_dump")
        #: ``assessment.contract_json()``: what is stored and what ``--json`` prints.
        self.payload = payload
        #: Primary keys of the exact sample rows (versions) the rules read.
        self.sample_pks = sample_pks
        self._assessment = assessment
        self._dump = dump

    @property
    def assessment(self) -> Assessment:
        """The :class:`~pipeline.assessment.Assessment` (rebuilt once from a worker's dump)."""
        if self._assessment is None:
            from pipeline.assessment import Assessment

            self._assessment = Assessment.model_validate(self._dump)
            self._dump = None
        return self._assessment


def evaluate_from_store(store: Store, settings: Settings, kb: KnowledgeBase,
                        patient_ids: list[str], as_of: date) -> list[Evaluated]:
    """Evaluate ``patient_ids`` at ``as_of`` from ``store``, in shards when worth it.

    Returns one :class:`Evaluated` per patient, sorted by patient ID (as
    ``evaluate_cohort`` sorts them).
    """
    ids = sorted(set(patient_ids))
    shards = _shards(ids, settings.run.evaluate_processes, _shareable(store))
    if len(shards) == 1:
        return _evaluate(store, settings, kb, ids, as_of)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(shards) - 1, mp_context=context) as pool:
        # Submitted first: the workers import and read while this process reads its shard.
        futures = [pool.submit(_shard_worker, store.url, settings, kb, shard, as_of)
                   for shard in shards[1:]]
        out = _evaluate(store, settings, kb, shards[0], as_of)
        for future in futures:
            out.extend(Evaluated(payload, pks, dump=dump)
                       for dump, payload, pks in future.result())
    return out


def _shards(ids: list[str], processes: int, shareable: bool,
            cpus: int | None = None) -> list[list[str]]:
    """``ids`` cut into contiguous shards of at least :data:`MIN_SHARD_PATIENTS`, never
    more than the processors this process may use (``cpus``; default: counted here)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    count = min(processes, cpus, len(ids) // MIN_SHARD_PATIENTS) if shareable else 1
    if count <= 1:
        return [ids]
    size = -(-len(ids) // count)  # ceiling: the last shard is the smallest
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _shareable(store: Store) -> bool:
    """Other processes can open this store (not an in-memory SQLite database)."""
    from sqlalchemy.engine import make_url

    url = make_url(store.url)
    return not (url.get_backend_name() == "sqlite"
                and (not url.database or url.database == ":memory:"))


def _evaluate(store: Store, settings: Settings, kb: KnowledgeBase, ids: list[str],
              as_of: date) -> list[Evaluated]:
    """Read ``ids``' frames from the store and evaluate them in this process."""
    from pipeline.rules import evaluate_cohort

    samples = store.samples_frame(ids)
    assessments = evaluate_cohort(store.observations_frame(ids), samples,
                                  store.therapies_frame(ids), settings, kb, as_of=as_of,
                                  patient_ids=ids)
    pk_by_sample = dict(zip(samples["sample_id"], samples["sample_pk"], strict=False))
    return [Evaluated(a.contract_json(),
                      [int(pk_by_sample[s]) for s in a.draws_used if s in pk_by_sample],
                      assessment=a)
            for a in assessments]


def _shard_worker(url: str, settings: Settings, kb: KnowledgeBase, ids: list[str],
                  as_of: date) -> list[tuple[dict[str, Any], dict[str, Any], list[int]]]:
    """A worker process: one shard, returned as plain data (pickles fast; pydantic
    models do not: 9 s for 10,000 assessments)."""
    store = Store(url, migrate=False)  # the parent brought the schema up to date
    try:
        return [(e.assessment.model_dump(), e.payload, e.sample_pks)
                for e in _evaluate(store, settings, kb, ids, as_of)]
    finally:
        store.dispose()
