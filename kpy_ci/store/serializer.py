"""YAML in and out, the one place that knows how kpy's files look: every document carries
``version`` and ``kind``; multi-line text is written as a block so a PR diff reads well."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

VERSION = "kpy/v1"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # PyYAML falls back when a block cannot hold it
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


FLOW_MAX = 80  # characters: a short list of scalars reads best on one line


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    """Header pairs, RESP commands, map entries: ``[Host, example.com]`` on one line."""
    scalars = all(v is None or isinstance(v, str | int | float | bool) for v in value)
    short = scalars and sum(len(str(v)) + 2 for v in value) <= FLOW_MAX
    flow = short and not any(isinstance(v, str) and "\n" in v for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"version": VERSION, "kind": kind, **body}


def dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def dump_all(docs: Iterable[dict[str, Any]]) -> str:
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, explicit_start=True
    )
