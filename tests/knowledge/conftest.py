"""Fixtures of the knowledge-base tests."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.knowledge import KnowledgeBase, load_knowledge_base


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    """The shipped knowledge base (loaded once)."""
    return load_knowledge_base()


def make_calls(rows: list[dict[str, object]]) -> pd.DataFrame:
    """A calls frame from dicts (missing contract columns are None)."""
    from pipeline.schema import conform_calls

    frame = pd.DataFrame(rows)
    if "record_index" not in frame.columns:
        frame["record_index"] = range(1, len(frame) + 1)
    return conform_calls(frame)
