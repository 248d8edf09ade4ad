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


_Dumper.add_representer(str, _str)


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"version": VERSION, "kind": kind, **body}


def dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def dump_all(docs: Iterable[dict[str, Any]]) -> str:
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, explicit_start=True
    )
