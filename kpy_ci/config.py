"""kpy.yml: read, validated against schemas/config.schema.json; a bad file is one line naming
the file, the line and the field."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kpy_ci.errors import UsageError

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CONFIG_FILE = "kpy.yml"
CONFIG_VARIABLE = "KPY_CONFIG"
"""Names the kpy.yml to use instead of the one beside the test-sets (the action's config)."""


@dataclass(frozen=True)
class Config:
    redact_headers: tuple[str, ...] = ()
    redact_json_fields: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()
    noise: tuple[str, ...] = ()
    """Fields every replayed response may differ in (noise.py)."""
    dsn_env: tuple[str, ...] = ()
    """Environment variables holding PostgreSQL DSNs that kpy reads the schema over at
    record time (schemas.postgres.dsn_env); the DSNs are never written anywhere."""
    openapi: dict[str, str] = field(default_factory=dict)
    """The OpenAPI document (a file relative to kpy.yml, or a URL) of each outbound host."""
    service_openapi: str | None = None
    """The service's own OpenAPI document, for its test cases."""
    tls_ca_files: tuple[str, ...] = ()
    """CA files the service's own configuration names: shown to it with kpy's CA added."""
    tls_opaque: tuple[str, ...] = ()
    """Server names whose TLS kpy relays as it is."""
    source: Path | None = field(default=None, compare=False)


def schema(name: str) -> dict[str, Any]:
    """A JSON Schema of schemas/ (packaged beside the code)."""
    for where in (SCHEMAS, SCHEMAS.parent.parent / "schemas"):
        if (where / name).is_file():
            return json.loads((where / name).read_text())  # type: ignore[no-any-return]
    raise FileNotFoundError(f"schema {name} is not installed with kpy")


def config_file(path: Path, env: Mapping[str, str] = os.environ) -> Path | None:
    """The kpy.yml in force: $KPY_CONFIG's (which must exist), else ``path``/kpy.yml when
    it is there."""
    named = env.get(CONFIG_VARIABLE)
    if named:
        if not Path(named).is_file():
            raise UsageError(f"{named}: no such file (named by {CONFIG_VARIABLE})")
        return Path(named)
    file = path / CONFIG_FILE
    return file if file.exists() else None


def load(path: Path) -> Config:
    """The kpy.yml in force for test-sets under ``path``, or the defaults when there is none."""
    file = config_file(path)
    if file is None:
        return Config()
    data, node = read_yaml(file)
    validate(data, "config.schema.json", file, node)
    redact = data.get("redact", {})
    schemas = data.get("schemas", {})
    dsn_env = schemas.get("postgres", {}).get("dsn_env", ())
    return Config(
        redact_headers=tuple(redact.get("headers", ())),
        redact_json_fields=tuple(redact.get("json_fields", ())),
        passthrough=tuple(data.get("passthrough", ())),
        noise=tuple(data.get("noise", ())),
        dsn_env=(dsn_env,) if isinstance(dsn_env, str) else tuple(dsn_env),
        openapi=dict(schemas.get("openapi", {})),
        service_openapi=schemas.get("service_openapi"),
        tls_ca_files=tuple(data.get("tls", {}).get("ca_files", ())),
        tls_opaque=tuple(name.lower() for name in data.get("tls", {}).get("opaque", ())),
        source=file,
    )


Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader where PyYAML has it (several times faster), else PyYAML's own."""


Nodes = Callable[[], "yaml.Node | None"]
"""A document's YAML nodes, made when asked: only a line number needs them, and a set's
test files would hold tens of KB of nodes each."""


def read_yaml(file: Path) -> tuple[Any, Nodes]:
    """One YAML document of a kpy file: its data, and how to get its nodes (for line
    numbers)."""
    text = utf8(file, file.read_bytes())
    try:
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        raise yaml_error(file, e, text=text) from None
    return data, lambda: yaml.compose(text, Loader=Loader)


def utf8(file: Path, data: bytes, offset: int = 0) -> str:
    """``data`` as text, or a UsageError naming the first byte that is not UTF-8 (counted
    from the file's start: ``data`` begins at ``offset``)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{file}: not UTF-8 text at byte {offset + e.start}") from None


def yaml_error(
    file: Path, e: yaml.YAMLError, first_line: int = 1, text: str | None = None
) -> UsageError:
    """``file:line: not valid YAML: why``, the line counted from ``first_line``; ``text``,
    the document's, places a character the reader refused (it gives an offset, no line)."""
    mark = getattr(e, "problem_mark", None)
    line = f":{mark.line + first_line}" if mark is not None else ""
    why = getattr(e, "problem", None)
    if isinstance(e, yaml.reader.ReaderError):
        why = str(e).split("\n")[0]  # "unacceptable character #x0001: ...", then where
        if text is not None:
            line = f":{text.count(chr(10), 0, e.position) + first_line}"
    return UsageError(f"{file}{line}: not valid YAML: {why or e}")


def validator(schema_name: str) -> jsonschema.protocols.Validator:
    """The checker of a schema, made once (a set may hold many thousand documents), its
    ``$ref`` resolved among schemas/ and the Mock schema's protocols from the registry."""
    from kpy_ci.schema import documents  # the registry's protocols are only imported then

    return documents.validator(schema_name)


def validate(
    data: Any,
    schema_name: str,
    file: Path,
    node: yaml.Node | Callable[[], yaml.Node | None] | None,
    first_line: int = 1,
) -> None:
    """UsageError naming file, line and field for the first thing that does not fit.
    ``node``: the document's nodes, or how to get them (only a bad document needs them);
    ``first_line``: the file's line where the document begins."""
    from kpy_ci.schema import documents

    error = documents.first_error(data, schema_name)
    if error is None:
        return
    where, message = error
    line = line_of(node() if callable(node) else node, where) + first_line - 1
    raise UsageError(f"{file}:{line}: {documents.dotted(where)}: {message}")


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
