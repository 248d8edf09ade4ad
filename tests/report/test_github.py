"""On GitHub Actions: annotations escaped as GitHub's toolkit does, a summary whose
Markdown holds together (tables, <details>, fences) whatever the failures contain, step
outputs; and nothing at all anywhere else."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from kpy_ci.report import github
from kpy_ci.report.model import RunResult, SetResult
from tests.report.results import broken_set, failing, passing, sample


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **more,
    }


def test_escaping() -> None:
    assert github.escape_data("100% a\r\nb: c, d") == "100%25 a%0D%0Ab: c, d"
    assert github.escape_property("100% a\r\nb: c, d") == "100%25 a%0D%0Ab%3A c%2C d"


def test_one_annotation_per_failing_test() -> None:
    result = sample()
    result.sets[0].tests.append(failing("shop", "test-3", message="100% off\nnot 50%"))
    assert github.annotations(result) == [
        "::error file=keploy/shop%3Av2%2Cb/tests/test-2.yaml,line=7,"
        "title=kpy%3A shop/test-2 POST /orders::status 500, expected 200 <&>",
        "::error file=keploy/shop%3Av2%2Cb/tests/test-2.yaml,line=7,"
        "title=kpy%3A shop/test-3 POST /orders::100%25 off%0Anot 50%25",
    ]


def test_annotation_files_are_relative_to_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "service").mkdir()
    monkeypatch.chdir(tmp_path / "service")
    test = failing("s", "t", file="keploy/s/tests/t.yaml", message="")
    result = RunResult([SetResult("s", Path("keploy/s"), [test])])
    [command] = github.annotations(result, workspace=tmp_path)
    assert command.startswith("::error file=service/keploy/s/tests/t.yaml,line=7,")
    assert command.endswith("::failed")
    [command] = github.annotations(result, workspace=tmp_path / "elsewhere")
    assert command.startswith("::error file=keploy/s/tests/t.yaml,")


def table_rows(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def check_blocks(markdown: str) -> list[list[str]]:
    """Every <details> closed before the next opens, every fence closed; the code blocks."""
    depth, fence, blocks = 0, "", list[list[str]]()
    for line in markdown.splitlines():
        if fence:
            if line.rstrip() == fence:
                fence = ""
            else:
                blocks[-1].append(line)
        elif line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
            blocks.append([])
        elif line == "<details>":
            depth += 1
            assert depth == 1
        elif line == "</details>":
            depth -= 1
            assert depth == 0
    assert (depth, fence) == (0, "")
    return blocks


def test_summary(tmp_path: Path) -> None:
    result = sample()
    result.sets.insert(0, SetResult("a|b", Path("keploy/a|b"), [passing("a|b", "t")]))
    result.sets.append(broken_set())
    markdown = github.summary_markdown(result, tmp_path / "junit.xml")
    assert markdown.startswith("## kpy: 3 passed, 2 failed\n")
    assert table_rows(markdown) == [
        ["Set", "Passed", "Failed", "Total", "Seconds"],
        ["---", "---:", "---:", "---:", "---:"],
        ["a\\|b", "1", "0", "1", "0.00"],
        ["shop", "1", "1", "2", "0.50"],
        ["users", "1", "0", "1", "1.25"],
        ["orders", "0", "1", "1", "30.00"],
    ]
    assert "<summary><code>shop/test-2</code> POST /orders: " in markdown
    assert "status 500, expected 200 &lt;&amp;&gt;</summary>" in markdown
    blocks = check_blocks(markdown)
    assert blocks[0] == ["the service never became ready:", "connection refused on 127.0.0.1:8080"]
    assert blocks[1] == ["panic: cannot bind \\x1b[31m<&>\\x1b[0m", "exit status 2"]
    # the details whole, their own fences included, in one block
    assert "\n".join(blocks[2]) + "\n" == (
        "response differs:\n--- recorded\n+++ live\n"
        '-  "price": 12 <&>\n'
        '+  "price": 13 \\x00\\x1b[31mred\\x1b[0m\\x07\n'
        "```\nnot a fence of the report\n````\n"
    )
    assert "\n`````text\n" in markdown
    unused = markdown.split("### Unused mocks in users (60)\n\n")[1].splitlines()[:52]
    assert unused[0] == "- mock-1 redis GET shop:products:1"
    assert unused[-3:] == ["- mock-50 redis GET shop:products:50", "- and 10 more", ""]
    assert f"JUnit report: <code>{tmp_path / 'junit.xml'}</code>" in markdown


def test_summary_stays_under_githubs_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github, "SUMMARY_BYTES", 3000)
    monkeypatch.setattr(github, "DETAILS_CHARS", 500)
    huge = "x" * 100 + "\n"
    tests = [failing("s", f"t{i}", details=huge * 500) for i in range(40)]
    markdown = github.summary_markdown(RunResult([SetResult("s", Path("s"), tests)]))
    assert "more characters in the JUnit report" in markdown
    assert markdown.count("<details>") == 3
    assert "\n37 more failed tests: see the JUnit report.\n" in markdown
    assert len(markdown.encode()) < 3000
    check_blocks(markdown)


def test_report_on_github(tmp_path: Path) -> None:
    out = io.StringIO()
    junit = tmp_path / "junit.xml"
    github.report(sample(), environment(tmp_path), junit, out)
    assert out.getvalue().startswith("::error file=keploy/shop%3Av2%2Cb/tests/test-2.yaml,")
    assert len(out.getvalue().splitlines()) == 1
    assert (tmp_path / "summary.md").read_text().startswith("## kpy: 2 passed, 1 failed\n")
    output = (tmp_path / "output").read_text()
    assert output == f"passed=2\nfailed=1\ntotal=3\njunit={junit}\n"


def test_outputs_append_and_junit_may_be_absent(tmp_path: Path) -> None:
    (tmp_path / "output").write_text("earlier=1\n")
    (tmp_path / "summary.md").write_text("# Earlier step\n")
    github.write_outputs(RunResult(), environment(tmp_path), None)
    github.write_summary(RunResult(), environment(tmp_path), None)
    lines = (tmp_path / "output").read_text().splitlines()
    assert dict(line.split("=", 1) for line in lines) == {
        "earlier": "1",
        "passed": "0",
        "failed": "0",
        "total": "0",
        "junit": "",
    }
    assert (tmp_path / "summary.md").read_text().startswith("# Earlier step\n## kpy: 0 passed")


@pytest.mark.parametrize("actions", [None, "false", ""])
def test_nothing_off_github(tmp_path: Path, actions: str | None) -> None:
    env = environment(tmp_path)
    if actions is None:
        del env["GITHUB_ACTIONS"]
    else:
        env["GITHUB_ACTIONS"] = actions
    out = io.StringIO()
    github.report(sample(), env, tmp_path / "junit.xml", out)
    github.write_summary(sample(), env, None)
    github.write_outputs(sample(), env, None)
    assert out.getvalue() == ""
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_variable_skips_that_file(tmp_path: Path) -> None:
    out = io.StringIO()
    github.report(sample(), {"GITHUB_ACTIONS": "true"}, None, out)
    assert out.getvalue().startswith("::error ")
    env = environment(tmp_path)
    del env["GITHUB_OUTPUT"]
    github.report(sample(), env, None, io.StringIO())
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]
