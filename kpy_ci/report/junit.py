"""JUnit XML, the report every CI system reads, and the merge of the files a sharded run
writes (one per job of a matrix) into one.

The files validate against Jenkins' junit-10.xsd except for two attributes of
``<testcase>``, ``file`` and ``line``: the XSD has no place for them, but GitHub's test
reporters read them to point at the test's YAML file, so they are written anyway.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kpy_ci.errors import UsageError
from kpy_ci.report.ledger import ledger_text
from kpy_ci.report.model import RunResult, SetResult, TestResult, one_line, printable
from kpy_ci.store.atomic import write_file

ERROR_TYPE = "kpy.service"
SERVICE_CASE = "(service)"
"""The testcase that stands for a set's service when the set could not be replayed."""
COUNTS = ("tests", "failures", "errors", "skipped")


def seconds(value: float) -> str:
    """Seconds as the XSD's SUREFIRE_TIME wants them: no exponent, at most 3 decimals."""
    return f"{value:.3f}" if math.isfinite(value) and value > 0 else "0.000"


def write_junit(result: RunResult, path: Path, *, started: datetime | None = None) -> None:
    """Write the run as JUnit XML, whole or not at all. ``started`` is when the run began
    (by default, its seconds before now); sets are taken to run one after another."""
    took = [float(seconds(s.seconds)) for s in result.sets]
    start = started or datetime.now(timezone.utc) - timedelta(seconds=sum(took))
    root = ET.Element("testsuites", name="kpy")
    for set_, set_seconds in zip(result.sets, took, strict=True):
        root.append(_suite(set_, start))
        start += timedelta(seconds=set_seconds)
    _total(root)
    _write(root, path)


def _suite(set_: SetResult, started: datetime) -> ET.Element:
    suite = ET.Element("testsuite", name=printable(set_.name))
    suite.extend(_case(test) for test in set_.tests)
    if set_.error is not None:
        suite.append(_service_case(set_))
    counts = {
        "tests": len(suite),
        "failures": set_.failed,
        "errors": int(set_.error is not None),
        "skipped": 0,
    }
    suite.attrib.update({name: str(value) for name, value in counts.items()})
    suite.set("time", seconds(set_.seconds))
    suite.set("timestamp", started.isoformat(timespec="seconds"))
    suite.set("file", printable(str(set_.path)))
    _add_text(suite, "system-out", _suite_out(set_))
    return suite


def _case(test: TestResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=printable(test.name),
        classname=printable(test.set_name),
        time=seconds(test.seconds),
        file=printable(str(test.file)),
        line=str(test.line),
    )
    if not test.passed:
        failure = ET.SubElement(
            case, "failure", message=one_line(test.message) or "failed", type=test.failure_type
        )
        failure.text = printable(test.details or test.message)
    noise = f"kpy: noise proposed: {', '.join(test.noise)}\n" if test.noise else ""
    if test.made_up:
        noise += f"kpy: made-up values learned: {', '.join(test.made_up)}\n"
    if test.first_sending:
        noise += f"kpy: passed when sent again; the first sending: {test.first_sending}\n"
    egress = ledger_text(test.ledger) if test.ledger is not None else ""
    _add_text(case, "system-out", noise + egress + test.log)
    return case


def _service_case(set_: SetResult) -> ET.Element:
    case = ET.Element(
        "testcase", name=SERVICE_CASE, classname=printable(set_.name), time=seconds(0.0)
    )
    # a file, not the set's folder: reporters annotate a file, and GitHub only a tracked one
    case.set("file", printable(str(set_.path / "test-set.yaml")))
    case.set("line", "1")
    error = ET.SubElement(
        case, "error", message=one_line(set_.error or "") or "failed", type=ERROR_TYPE
    )
    error.text = printable(set_.error or "")
    _add_text(case, "system-out", set_.log_tail)
    return case


def _suite_out(set_: SetResult) -> str:
    parts = []
    if set_.unused:
        listed = "".join(f"  {mock}\n" for mock in set_.unused)
        parts.append(f"unused mocks ({len(set_.unused)}):\n{listed}")
    if set_.log_tail:
        parts.append(f"the service's last output:\n{set_.log_tail}")
    return "\n".join(parts)


def _add_text(parent: ET.Element, tag: str, text: str) -> None:
    if text:
        ET.SubElement(parent, tag).text = printable(text)


def _total(root: ET.Element) -> None:
    """Recompute ``<testsuites>``' totals from its suites."""
    suites = root.findall("testsuite")
    for name in COUNTS[:3]:
        root.set(name, str(sum(int(s.get(name, "0")) for s in suites)))
    root.set("time", seconds(sum(float(s.get("time", "0")) for s in suites)))


def _write(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    write_file(path, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def merge(inputs: list[Path], output: Path) -> None:
    """Merge the JUnit files of one run's shards: suites of the same name become one
    (testcases concatenated, counts and times summed), the others are kept in order."""
    merged: dict[str, ET.Element] = {}
    name = None
    for path in inputs:
        root = _read(path)
        name = name or root.get("name")
        for suite in _suites(root, path):
            _merge_suite(merged, suite)
    root = ET.Element("testsuites", name=name or "kpy")
    root.extend(merged.values())
    _total(root)
    _write(root, output)


def _read(path: Path) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise UsageError(f"{path}: not a JUnit XML file: {e}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise UsageError(
            f"{path}: not a JUnit XML file: its root is <{root.tag}>, "
            "not <testsuites> or <testsuite>"
        )
    return root


def _suites(root: ET.Element, path: Path) -> Iterable[ET.Element]:
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        if suite.get("name") is None:
            raise UsageError(f"{path}: not a JUnit XML file: a <testsuite> has no name")
        for count in COUNTS:
            if not suite.get(count, "0").isdecimal():
                raise UsageError(
                    f"{path}: not a JUnit XML file: testsuite {suite.get('name')!r} has "
                    f"{count}={suite.get(count)!r}, not a count"
                )
        try:
            float(suite.get("time", "0"))
        except ValueError:
            raise UsageError(
                f"{path}: not a JUnit XML file: testsuite {suite.get('name')!r} has "
                f"time={suite.get('time')!r}, not a number of seconds"
            ) from None
    return suites


def _merge_suite(merged: dict[str, ET.Element], suite: ET.Element) -> None:
    name = suite.get("name", "")
    into = merged.get(name)
    if into is None:
        merged[name] = suite
        return
    for count in COUNTS:
        if count in into.attrib or count in suite.attrib:
            into.set(count, str(int(into.get(count, "0")) + int(suite.get(count, "0"))))
    into.set("time", seconds(float(into.get("time", "0")) + float(suite.get("time", "0"))))
    if suite.get("timestamp", "~") < into.get("timestamp", "~"):
        into.set("timestamp", suite.get("timestamp", ""))
    for child in suite:
        same = into.find(child.tag) if child.tag in ("system-out", "system-err") else None
        if same is None:
            into.append(child)
        else:
            same.text = "\n".join(filter(None, [same.text, child.text]))
