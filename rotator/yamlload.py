"""YAML loading that refuses duplicate keys and keeps timestamps as text.

A duplicated key in a world or playbook file silently overriding the first is
exactly the kind of quiet surprise this tool must not have.
"""

from __future__ import annotations

from typing import Any

import yaml

from rotator.errors import BadInput


class _StrictLoader(yaml.SafeLoader):
    pass


# Keep "2026-11-22T00:00:00Z" a string: the schema validates times itself.
_StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise BadInput(f"duplicate key {key!r} at line {line}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, *, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except BadInput as e:
        raise BadInput(f"{source}: {e.message}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise BadInput(f"{source}: not valid YAML{where}: {problem}") from None


def json_path(parts: list[Any] | tuple[Any, ...]) -> str:
    """['storage', 0, 'objects', 3, 'name'] -> 'storage[0].objects[3].name'."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"
