"""Test-sets read back for replay. Test cases are small and read whole; mocks.yaml may be
larger than memory, so it is scanned once, one document at a time, and each document is
read again from its place in the file when it is needed (``MocksFile``).

Every document is checked against its JSON Schema; a bad one is a UsageError naming the
file, the line and the field. A set written by another format version needs re-recording.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from kpy_ci.config import Loader, Nodes, line_of, read_yaml, utf8, validate, yaml_error
from kpy_ci.errors import KpyError, UsageError
from kpy_ci.store.serializer import VERSION

_NUMBERED = re.compile(r"(\d+)$")


class ReRecordNeeded(KpyError):
    """The set cannot be replayed as it is: record it again."""

    exit_code = 3


@dataclass(frozen=True)
class TestCase:
    name: str
    file: Path
    doc: dict[str, Any]
    nodes: Nodes = field(default=lambda: None, repr=False, compare=False)

    def line(self, where: list[Any]) -> int:
        """The line (from 1) of the value at ``where`` in the file, as far as it exists."""
        return line_of(self.nodes(), where)

    @property
    def mocks(self) -> list[str]:
        return list(self.doc.get("mocks", ()))

    @property
    def noise(self) -> list[str]:
        return list(self.doc.get("noise", ()))

    @property
    def made_up(self) -> list[str]:
        return list(self.doc.get("made_up", ()))


@dataclass
class TestSet:
    name: str
    path: Path
    meta: dict[str, Any]
    tests: list[TestCase] = field(default_factory=list)

    @property
    def mocks_file(self) -> Path:
        return self.path / "mocks.yaml"


def _number(path: Path) -> tuple[int, str]:
    m = _NUMBERED.search(path.stem if path.is_file() else path.name)
    return (int(m.group(1)) if m else 0, path.name)


def find_sets(root: Path, name: str | None = None) -> list[Path]:
    """The test-sets under ``root`` (or the one named), in order: test-set-2 before -10."""
    if name is not None:
        path = root / name
        if not (path / "test-set.yaml").is_file():
            raise UsageError(f"{path}: no test-set here (no test-set.yaml)")
        return [path]
    if not root.is_dir():
        raise UsageError(f"{root}: no such directory (--path: where the test-sets are)")
    found = [p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()]
    return sorted((p for p in found if (p / "test-set.yaml").is_file()), key=_number)


def _load(file: Path, schema_name: str) -> dict[str, Any]:
    return _load_node(file, schema_name)[0]


def _load_node(file: Path, schema_name: str) -> tuple[dict[str, Any], Nodes]:
    data, node = read_yaml(file)
    _check_version(data, file)
    validate(data, schema_name, file, node)
    return data, node


def _check_version(data: Any, file: Path, line: int = 1) -> None:
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, str) and version.startswith("kpy/") and version != VERSION:
        raise ReRecordNeeded(
            f"{file}:{line}: version: {version} is not {VERSION}, the format this kpy "
            "replays: record the set again"
        )


def load_set(path: Path) -> TestSet:
    meta = _load(path / "test-set.yaml", "testset.schema.json")
    tests = [
        TestCase(file.stem, file, *_load_node(file, "testcase.schema.json"))
        for file in sorted((path / "tests").glob("*.yaml"), key=_number)
    ]
    if not (path / "mocks.yaml").is_file():
        raise UsageError(f"{path / 'mocks.yaml'}: missing (a test-set has one, even empty)")
    for test in tests:
        for i, pattern in enumerate(test.made_up):
            try:
                re.compile(pattern)
            except re.error as e:
                where = f"{test.file}:{test.line(['made_up', i])}"
                raise UsageError(f"{where}: made_up[{i}]: not a regular expression ({e})") from e
    return TestSet(path.name, path, meta, tests)


@dataclass(frozen=True, slots=True)
class Span:
    """Where one document of mocks.yaml is: byte offset and size, and its first line."""

    offset: int
    size: int
    line: int


class MocksFile:
    """mocks.yaml, open for reading documents back by their Span."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115  # closed by close()

    def scan(self) -> Iterator[tuple[Span, dict[str, Any]]]:
        """Each document once, checked, with its place: memory holds one at a time."""
        with open(self.path, "rb") as f:
            for span, text in documents(f):
                yield span, self._parse(text, span)

    def read(self, span: Span) -> dict[str, Any]:
        """A document scan() gave, again: checked then, so only parsed now."""
        return yaml.load(self.text(span), Loader=Loader)  # type: ignore[no-any-return]

    def text(self, span: Span) -> bytes:
        """A document's bytes as they are in the file (for its line numbers)."""
        self._file.seek(span.offset)
        return self._file.read(span.size)

    def close(self) -> None:
        self._file.close()

    def _parse(self, text: bytes, span: Span) -> dict[str, Any]:
        decoded = utf8(self.path, text, span.offset)
        try:
            data = yaml.load(decoded, Loader=Loader)
        except yaml.YAMLError as e:
            raise yaml_error(self.path, e, span.line, decoded) from None
        lines = text.split(b"\n")
        at = next((i for i, line in enumerate(lines) if line.startswith(b"version:")), 0)
        _check_version(data, self.path, span.line + at)
        node = lambda: yaml.compose(text, Loader=Loader)  # noqa: E731  # only on an error
        validate(data, "mock.schema.json", self.path, node, span.line)
        return data  # type: ignore[no-any-return]


def documents(f: IO[bytes]) -> Iterator[tuple[Span, bytes]]:
    """Split a multi-document YAML stream at its ``---`` lines (kpy writes one before each
    document; a line that is exactly ``---`` cannot be inside one of kpy's documents)."""
    chunk: list[bytes] = []
    offset = start = 0
    line = first = 1
    for raw in f:
        if raw.rstrip(b"\r\n") == b"---" or raw.startswith(b"--- "):
            if any(part.strip() for part in chunk):
                yield Span(start, offset - start, first), b"".join(chunk)
            chunk, start, first = [], offset, line
        chunk.append(raw)
        offset += len(raw)
        line += 1
    if any(part.strip() for part in chunk):
        yield Span(start, offset - start, first), b"".join(chunk)
