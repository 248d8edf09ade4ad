"""kpy.yml: read, validated against schemas/config.schema.json; a bad file is one line naming
the file, the line and the field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kpy_ci.errors import UsageError

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CONFIG_FILE = "kpy.yml"


@dataclass(frozen=True)
class Config:
    redact_headers: tuple[str, ...] = ()
    redact_json_fields: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()
    noise: tuple[str, ...] = ()
    """Fields every replayed response may differ in (noise.py)."""
    source: Path | None = field(default=None, compare=False)


def schema(name: str) -> dict[str, Any]:
    """A JSON Schema of schemas/ (packaged beside the code)."""
    for where in (SCHEMAS, SCHEMAS.parent.parent / "schemas"):
        if (where / name).is_file():
            return json.loads((where / name).read_text())  # type: ignore[no-any-return]
    raise FileNotFoundError(f"schema {name} is not installed with kpy")


def load(path: Path) -> Config:
    """``path``/kpy.yml, or the defaults when there is none."""
    file = path / CONFIG_FILE
    if not file.exists():
        return Config()
    text = file.read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{file}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    validate(data, "config.schema.json", file, node)
    redact = data.get("redact", {})
    return Config(
        redact_headers=tuple(redact.get("headers", ())),
        redact_json_fields=tuple(redact.get("json_fields", ())),
        passthrough=tuple(data.get("passthrough", ())),
        noise=tuple(data.get("noise", ())),
        source=file,
    )


def validate(data: Any, schema_name: str, file: Path, node: yaml.Node | None) -> None:
    """UsageError naming file, line and field for the first thing that does not fit."""
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = errors[0]
    where = list(error.absolute_path)
    field_name = ".".join(str(p) for p in where) or "(top level)"
    raise UsageError(f"{file}:{line_of(node, where)}: {field_name}: {error.message}")


def line_of(node: yaml.Node | None, where: list[Any]) -> int:
    """The line (from 1) of the value at ``where`` in a composed YAML document: the
    deepest node that exists on the way."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in where:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line
