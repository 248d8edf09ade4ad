"""The JUnit file validates against Jenkins' XSD (plus ``file`` and ``line`` on testcases,
which GitHub's reporters read), loads in junitparser whatever the service printed, and
the shards of a run merge into one file that validates the same way."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest
import xmlschema
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml

from kpy_ci.commands import report_cmd
from kpy_ci.errors import UsageError
from kpy_ci.report import junit
from kpy_ci.report.model import RunResult, SetResult
from tests.report.results import broken_set, failing, passing, sample

XSD = Path(__file__).with_name("junit-10.xsd")
FILE_AND_LINE = (
    '<xs:attribute name="file" type="xs:string"/><xs:attribute name="line" type="xs:string"/>'
)


def jenkins_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(XSD.read_text())


def extended_schema() -> xmlschema.XMLSchema:
    """Jenkins' XSD with exactly two more optional attributes on testcase, file and line."""
    text = XSD.read_text()
    start = text.index('<xs:element name="testcase">')
    end = text.index("</xs:complexType>", start)
    return xmlschema.XMLSchema(text[:end] + FILE_AND_LINE + text[end:])


def validates(path: Path, tmp_path: Path) -> None:
    """Valid with file and line; valid against Jenkins' own XSD once they are stripped, and
    not before (so they are all that the XSD lacks)."""
    extended_schema().validate(path)
    tree = ET.parse(path)
    cases = list(tree.getroot().iter("testcase"))
    if any("line" in case.attrib for case in cases):
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            jenkins_schema().validate(path)
    for case in cases:
        case.attrib.pop("file", None)
        case.attrib.pop("line", None)
    stripped = tmp_path / f"stripped-{path.name}"
    tree.write(stripped, encoding="utf-8", xml_declaration=True)
    jenkins_schema().validate(stripped)


def full_result() -> RunResult:
    result = sample()
    result.sets.append(broken_set())
    return result


def test_xsd_on_disk_is_jenkins_verbatim() -> None:
    text = XSD.read_text()
    assert text.count('name="file"') == 1  # testsuite's, not testcase's
    assert "Gregory Boissinot" in text


def test_validates_against_the_xsd(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    junit.write_junit(full_result(), path)
    validates(path, tmp_path)


def test_junitparser_reads_suites_cases_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    junit.write_junit(
        full_result(), path, started=datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    )
    xml = JUnitXml.fromfile(str(path))
    assert (xml.tests, xml.failures, xml.errors) == (5, 2, 1)
    shop, users, orders = list(xml)
    assert [s.name for s in (shop, users, orders)] == ["shop", "users", "orders"]
    assert [(s.tests, s.failures, s.errors, s.skipped) for s in (shop, users, orders)] == [
        (2, 1, 0, 0),
        (1, 0, 0, 0),
        (2, 1, 1, 0),
    ]
    assert shop._elem.get("file") == "keploy/shop"
    # the sets ran one after another, from the start of the run
    assert [s.timestamp for s in (shop, orders)] == [
        "2024-05-06T07:08:09+00:00",
        "2024-05-06T07:08:10+00:00",
    ]
    passed, failed = list(shop)
    assert (passed.name, passed.classname, passed.time) == ("test-1", "shop", 0.012)
    assert passed.is_passed and passed.system_out == "GET /products 200\n"
    assert (failed._elem.get("file"), failed._elem.get("line")) == (
        "keploy/shop:v2,b/tests/test-2.yaml",
        "7",
    )
    [failure] = failed.result
    assert isinstance(failure, Failure)
    assert failure.type == "kpy.regression"
    assert failure.message == "status 500, expected 200 <&>"
    assert failure.text.startswith("response differs:\n--- recorded\n")
    assert '"price": 13 \\x00\\x1b[31mred\\x1b[0m\\x07\n```\n' in failure.text
    assert failed.system_out == "Traceback (most recent call last):\n  boom \\x1b[1m<&>\\x1b[0m\n"


def test_unused_mocks_and_log_tail_in_the_suites_output(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    junit.write_junit(sample(), path)
    users = ET.parse(path).getroot().findall("testsuite")[1]
    out = users.findtext("system-out") or ""
    assert out.startswith("unused mocks (60):\n  mock-1 redis GET shop:products:1\n")
    assert "  mock-60 redis GET shop:products:60\n" in out
    assert out.endswith("the service's last output:\nlistening on :8080\n")


def test_a_set_that_could_not_run_has_a_service_error(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    junit.write_junit(RunResult([broken_set()]), path)
    [suite] = JUnitXml.fromfile(str(path))
    test, service = list(suite)
    assert test.is_failure and test.result[0].message == (
        "the service never became ready: connection refused on 127.0.0.1:8080"
    )
    assert (service.name, service.classname) == ("(service)", "orders")
    elem = service._elem
    assert (elem.get("file"), elem.get("line")) == (str(broken_set().path / "test-set.yaml"), "1")
    [error] = service.result
    assert isinstance(error, Error)
    assert "\n" not in error.message and error.message.startswith("the service never")
    assert error.text.endswith("connection refused on 127.0.0.1:8080")
    assert service.system_out == "panic: cannot bind \\x1b[31m<&>\\x1b[0m\nexit status 2\n"
    validates(path, tmp_path)


def test_written_whole_replacing_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "junit.xml"
    junit.write_junit(sample(), path)
    junit.write_junit(RunResult(), path)
    assert [p.name for p in path.parent.iterdir()] == ["junit.xml"]
    root = ET.parse(path).getroot()
    assert (root.tag, root.attrib) == (
        "testsuites",
        {"name": "kpy", "tests": "0", "failures": "0", "errors": "0", "time": "0.000"},
    )
    validates(path, tmp_path)


def shards(tmp_path: Path) -> list[Path]:
    """Two jobs of a matrix: each ran part of set shop, and a set of its own."""
    one = RunResult(
        [
            SetResult("shop", Path("keploy/shop"), [passing("shop", "test-1")], seconds=0.5),
            SetResult("users", Path("keploy/users"), [passing("users", "test-1")], seconds=1),
        ]
    )
    two = RunResult(
        [
            SetResult("shop", Path("keploy/shop"), [failing("shop", "test-2")], seconds=0.25),
            broken_set(),
        ]
    )
    paths = [tmp_path / "shard-1.xml", tmp_path / "shard-2.xml"]
    junit.write_junit(one, paths[0])
    junit.write_junit(two, paths[1])
    return paths


def test_merge_shards_one_suite_per_set(tmp_path: Path) -> None:
    merged = tmp_path / "merged.xml"
    junit.merge(shards(tmp_path), merged)
    validates(merged, tmp_path)
    xml = JUnitXml.fromfile(str(merged))
    assert (xml.tests, xml.failures, xml.errors, xml.time) == (5, 2, 1, 31.75)
    suites = {s.name: s for s in xml}
    assert list(suites) == ["shop", "users", "orders"]
    shop = suites["shop"]
    assert (shop.tests, shop.failures, shop.errors, shop.time) == (2, 1, 0, 0.75)
    assert [c.name for c in shop] == ["test-1", "test-2"]
    assert list(shop)[1].result[0].message == "status 500, expected 200 <&>"
    assert (suites["orders"].tests, suites["orders"].errors) == (2, 1)


def test_merge_joins_suite_output(tmp_path: Path) -> None:
    paths = []
    for i in (1, 2):
        paths.append(tmp_path / f"{i}.xml")
        only = SetResult("s", Path("s"), [passing("s", f"t{i}")], unused=[f"mock-{i}"])
        junit.write_junit(RunResult([only]), paths[-1])
    junit.merge(paths, tmp_path / "merged.xml")
    [suite] = ET.parse(tmp_path / "merged.xml").getroot()
    assert len(suite.findall("system-out")) == 1
    assert suite.findtext("system-out") == (
        "unused mocks (1):\n  mock-1\n\nunused mocks (1):\n  mock-2\n"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not xml at all", "not a JUnit XML file: syntax error"),
        ("<html><body/></html>", "not a JUnit XML file: its root is <html>"),
        ('<testsuite name="a" tests="x" failures="0" errors="0"/>', "tests='x', not a count"),
    ],
)
def test_merge_rejects_what_is_not_junit(tmp_path: Path, text: str, why: str) -> None:
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    junit.write_junit(sample(), good)
    bad.write_text(text)
    with pytest.raises(UsageError) as raised:
        junit.merge([good, bad], tmp_path / "merged.xml")
    assert str(raised.value).startswith(f"{bad}: ")
    assert why in str(raised.value)
    assert not (tmp_path / "merged.xml").exists()


def test_merge_takes_a_lone_testsuite(tmp_path: Path) -> None:
    lone = tmp_path / "lone.xml"
    lone.write_text(
        '<testsuite name="other" tests="1" failures="0" errors="0"><testcase name="x"/></testsuite>'
    )
    junit.merge([lone], tmp_path / "merged.xml")
    root = ET.parse(tmp_path / "merged.xml").getroot()
    assert (root.get("tests"), [s.get("name") for s in root]) == ("1", ["other"])


def test_report_merge_command(tmp_path: Path) -> None:
    merged = tmp_path / "merged.xml"
    runner = CliRunner()
    done = runner.invoke(
        report_cmd.report,
        ["merge", "-o", str(merged), *map(str, shards(tmp_path))],
        standalone_mode=False,
    )
    assert done.exception is None and done.return_value == 0
    assert len(JUnitXml.fromfile(str(merged))) == 3
    assert runner.invoke(report_cmd.report, ["merge", "-o", str(merged)]).exit_code == 2
    bad = tmp_path / "bad.xml"
    bad.write_text("nope")
    done = runner.invoke(report_cmd.report, ["merge", "-o", str(merged), str(bad)])
    assert isinstance(done.exception, UsageError) and str(bad) in str(done.exception)


def test_any_character_a_service_prints_is_made_safe(tmp_path: Path) -> None:
    everything = "".join(map(chr, range(32))) + "\x7f\ud800\udcff\ufffe\uffff é 😀"
    test = failing("s", f"t{everything}", message=everything, details=everything)
    path = tmp_path / "junit.xml"
    junit.write_junit(RunResult([SetResult("s", Path("s"), [test], unused=[everything])]), path)
    [case] = ET.parse(path).getroot().iter("testcase")
    failure = case.find("failure")
    assert failure is not None and "\n" not in failure.get("message", "\n")
    assert failure.text == (
        # XML readers turn a carriage return into a line feed
        "\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\t\n\\x0b\\x0c\n\\x0e\\x0f"
        + "".join(f"\\x{i:02x}" for i in range(16, 32))
        + "\x7f\\ud800\\udcff\\ufffe\\uffff é 😀"
    )
    validates(path, tmp_path)
