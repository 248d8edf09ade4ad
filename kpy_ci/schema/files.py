"""Every file of a test-set checked against its schema, for ``kpy validate``: all the
problems at once, one per bad document (its first), each naming the file, the line of the
field at fault (counted from the file's start, in mocks.yaml too) and the field.

What the reader (``kpy test``) stops at with an error, this reports and goes on: bytes that
are not UTF-8, YAML that does not parse, a document that is no mapping, a missing file, an
unknown ``kind``, another format ``version``. Then what one file says of another, where it is
cheap: a test naming a mock mocks.yaml lacks, test-set.yaml counting other than the set has.
mocks.yaml is read one document at a time, as the reader does: it may not fit in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kpy_ci.config import Loader, config_file, line_of
from kpy_ci.schema.documents import dotted, first_error, schema
from kpy_ci.schema.model import Problem
from kpy_ci.store.reader import documents
from kpy_ci.store.serializer import VERSION

LOCK_FILE = "schema.lock.yaml"  # as schema/lock.py writes it (which imports psycopg)
TOP = dotted([])  # "(top level)"
_NUMBER = re.compile(r"(\d+)$")


@dataclass
class Checked:
    """One document, read and checked: its data when it parsed as a mapping (even one that
    does not fit its schema), and its problem if any."""

    data: dict[str, Any] | None
    problem: Problem | None
    node: Callable[[], yaml.Node | None] = field(repr=False, default=lambda: None)
    first_line: int = 1

    def line(self, where: list[Any]) -> int:
        """The file's line of the value at ``where``."""
        return line_of(self.node(), where) + self.first_line - 1


MockCheck = Callable[[Checked], list[Problem]]
"""What more to check of each mock that fits its schema (kpy validate: its OpenAPI
document, the lock), while it is read."""


def check_set(set_dir: Path, more: MockCheck | None = None) -> list[Problem]:
    """Every problem with the files of one test-set (kpy.yml is ``check_config``'s)."""
    meta_file = set_dir / "test-set.yaml"
    meta = _check_one(meta_file, "testset.schema.json", "every test-set has one")
    problems = [meta.problem] if meta.problem else []
    tests = [
        (file, _check_one(file, "testcase.schema.json"))
        for file in sorted((set_dir / "tests").glob("*.yaml"), key=_numbered)
    ]
    problems += [checked.problem for _, checked in tests if checked.problem]
    mocks = _Mocks(set_dir / "mocks.yaml", more)
    problems += mocks.problems
    if (set_dir / LOCK_FILE).exists():
        problems += check_file(set_dir / LOCK_FILE, "schemalock.schema.json")
    if mocks.names is not None:
        problems += [
            p for file, checked in tests for p in _missing_mocks(file, checked, mocks.names)
        ]
    if meta.problem is None and mocks.file.is_file():
        problems += _counts(meta_file, meta, len(tests), mocks.count)
    return problems


class _Mocks:
    """mocks.yaml checked document by document, keeping only what the other files are
    checked against: the mocks' names (None when some document's could not be read, so
    that no test is blamed for naming it) and how many there are."""

    def __init__(self, file: Path, more: MockCheck | None = None) -> None:
        self.file, self.more = file, more
        self.problems: list[Problem] = []
        self.names: set[str] | None = set()
        self.count = 0
        if not file.is_file():
            self.names = None
            self.problems.append(
                Problem(str(file), 1, TOP, "missing (a test-set has one, even empty)")
            )
            return
        for checked in _check_mocks(file):
            self._add(file, checked)

    def _add(self, file: Path, checked: Checked) -> None:
        self.count += 1
        if checked.problem:
            self.problems.append(checked.problem)
        elif self.more is not None:
            self.problems += self.more(checked)
        name = checked.data.get("name") if checked.data is not None else None
        if self.names is None or not isinstance(name, str):
            self.names = None
        elif name in self.names:
            self.problems.append(_at(file, checked, ["name"], f"{name} is there twice"))
        else:
            self.names.add(name)


def check_config(root: Path) -> list[Problem]:
    """The problem with the kpy.yml in force (``root``/kpy.yml), if there is one and it has one."""
    file = config_file(root)
    return check_file(file, "config.schema.json") if file is not None else []


def check_file(path: Path, schema_name: str) -> list[Problem]:
    """The problem with one single-document file checked against a schema of schemas/."""
    problem = _check_one(path, schema_name).problem
    return [problem] if problem else []


# --- one document ---------------------------------------------------------------------------


def _check_one(file: Path, schema_name: str, why_needed: str = "") -> Checked:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return Checked(None, Problem(str(file), 1, TOP, f"missing ({why_needed or 'gone'})"))
    except OSError as e:
        return Checked(None, Problem(str(file), 1, TOP, f"cannot be read: {e.strerror}"))
    return check_document(file, data, schema_name)


def _check_mocks(file: Path) -> Iterator[Checked]:
    with open(file, "rb") as f:
        for span, text in documents(f):
            yield check_document(file, text, "mock.schema.json", span.offset, span.line)


def check_document(
    file: Path, text: bytes, schema_name: str, offset: int = 0, first_line: int = 1
) -> Checked:
    """One YAML document of ``file`` (its bytes ``text``, which begin at byte ``offset`` and
    line ``first_line`` of the file) checked, as far as it goes: UTF-8, YAML, a mapping,
    the version, the kind, then its schema."""
    where = str(file)
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + text.count(b"\n", 0, e.start)
        return Checked(
            None, Problem(where, line, TOP, f"not UTF-8 text at byte {offset + e.start}")
        )
    try:
        data = yaml.load(decoded, Loader=Loader)
    except yaml.YAMLError as e:
        return Checked(None, _yaml_problem(where, e, decoded, first_line))
    checked = Checked(None, None, lambda: yaml.compose(decoded, Loader=Loader), first_line)
    if not isinstance(data, dict):
        checked.problem = Problem(where, checked.line([]), TOP, f"not a mapping: {_what(data)}")
        return checked
    checked.data = data
    version, kind = data.get("version"), data.get("kind")
    expected = schema(schema_name)["properties"]["kind"]["const"]
    if isinstance(version, str) and version.startswith("kpy/") and version != VERSION:
        why = f"{version} is not {VERSION}, the format this kpy reads: record the set again"
        checked.problem = _at(file, checked, ["version"], why)
    elif isinstance(kind, str) and kind != expected:
        why = f"{kind!r} is not {expected!r}: {file.name} holds {expected} documents"
        checked.problem = _at(file, checked, ["kind"], why)
    elif (error := first_error(data, schema_name)) is not None:
        checked.problem = _at(file, checked, *error)
    return checked


def _at(file: Path, checked: Checked, where: list[Any], message: str) -> Problem:
    return Problem(str(file), checked.line(where), dotted(where), message)


def _yaml_problem(file: str, e: yaml.YAMLError, text: str, first_line: int) -> Problem:
    """Where the YAML broke: its mark's line, or, for a character the reader refused, the
    line of its offset."""
    mark = getattr(e, "problem_mark", None)
    if isinstance(e, yaml.reader.ReaderError):
        line, why = text.count("\n", 0, e.position), str(e).split("\n")[0]
    else:
        line, why = (mark.line if mark is not None else 0), str(getattr(e, "problem", e))
    return Problem(file, line + first_line, TOP, f"not valid YAML: {why}")


def _what(data: Any) -> str:
    if data is None:
        return "the document is empty"
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return f"it is {kinds.get(type(data), type(data).__name__)}"


# --- across files ---------------------------------------------------------------------------


def _missing_mocks(file: Path, test: Checked, names: set[str]) -> Iterator[Problem]:
    """The mocks a valid test lists that mocks.yaml does not have."""
    if test.problem is not None or test.data is None:
        return
    for i, name in enumerate(test.data.get("mocks", ())):
        if name not in names:
            yield _at(file, test, ["mocks", i], f"{name} is not in mocks.yaml")


def _counts(file: Path, meta: Checked, tests: int, mocks: int) -> Iterator[Problem]:
    assert meta.data is not None
    found = {"tests": (tests, "tests/*.yaml"), "mocks": (mocks, "documents in mocks.yaml")}
    for key, (count, what) in found.items():
        said = meta.data.get(key)
        if said != count:
            yield _at(file, meta, [key], f"{said} but the set has {count} {what}")


def _numbered(path: Path) -> tuple[int, str]:
    """test-2 before test-10."""
    m = _NUMBER.search(path.stem)
    return (int(m.group(1)) if m else 0, path.name)
