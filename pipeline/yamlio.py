"""One YAML reader for every YAML file ctdna reads (config, profiles, knowledge base).

PyYAML's ``safe_load`` silently keeps the *last* of two equal mapping keys, so a lab
override file with ``chip_genes:`` written twice applies only one of them without a word
(issue #10 item 8). :func:`load_yaml` uses a ``SafeLoader`` that refuses duplicate keys
with a :class:`yaml.constructor.ConstructorError` (a :class:`yaml.YAMLError`, so callers'
existing YAML error handling reports it with its line).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parser when available


class UniqueKeySafeLoader(_Base):
    """A safe loader that errors on duplicate mapping keys (``problem`` names the key)."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # the base constructor reports unhashable keys itself
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str | bytes) -> Any:
    """Parse one YAML document safely, rejecting duplicate mapping keys.

    Parameters
    ----------
    text
        The YAML document.

    Returns
    -------
    Any
        The parsed document (``None`` for an empty one).

    Raises
    ------
    yaml.YAMLError
        Invalid YAML, or a duplicate key (``ConstructorError`` whose ``problem`` names the
        key and ``problem_mark`` its line).
    """
    return yaml.load(text, Loader=UniqueKeySafeLoader)
