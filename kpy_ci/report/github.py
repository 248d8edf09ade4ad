"""GitHub Actions: an error annotation on each failing test's YAML file, a Markdown job
summary, and step outputs, so a workflow shows and uses the results without parsing JUnit.

Only on GitHub Actions (``GITHUB_ACTIONS=true``); the environment is an argument, so tests
pass their own. GitHub shows at most 10 error annotations per step: the summary has all.
"""

# no ``from __future__ import annotations``: it would shadow the function of that name
import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from kpy_ci.report.model import RunResult, SetResult, TestResult, one_line, printable

UNUSED_SHOWN = 50
DETAILS_CHARS = 20_000
"""Of one test's details in the summary; the JUnit report has them whole."""
SUMMARY_BYTES = 900_000
"""GitHub rejects a step summary over 1 MiB; kpy stays below with room for other steps'."""


def on_github(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """A workflow command's message, as GitHub's toolkit escapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(result: RunResult, workspace: Path | None = None) -> list[str]:
    """One ``::error`` command per failing test. GitHub wants file names relative to the
    repository: give ``workspace`` ($GITHUB_WORKSPACE) when kpy runs below it."""
    commands = []
    for test in (t for s in result.sets for t in s.tests if not t.passed):
        properties = {
            "file": relative(test.file, workspace),
            "line": str(test.line),
            "title": f"kpy: {test.set_name}/{test.name} {test.request}",
        }
        listed = ",".join(f"{k}={escape_property(one_line(v))}" for k, v in properties.items())
        message = printable(test.message).strip() or "failed"
        commands.append(f"::error {listed}::{escape_data(message)}")
    return commands


def relative(file: Path, workspace: Path | None) -> str:
    if workspace is not None:
        try:
            return (Path.cwd() / file).resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            pass
    return file.as_posix()


def summary_markdown(result: RunResult, junit_path: Path | None = None) -> str:
    """The job summary: a table of sets, each failure in a ``<details>``, unused mocks."""
    lines = [f"## kpy: {result.passed} passed, {result.failed} failed", ""]
    lines += ["| Set | Passed | Failed | Total | Seconds |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in result.sets:
        lines.append(
            f"| {_cell(s.name)} | {s.passed} | {s.failed} | {len(s.tests)} | {s.seconds:.2f} |"
        )
    lines.append("")
    failed = [t for s in result.sets for t in s.tests if not t.passed]
    errors = [s for s in result.sets if s.error is not None]
    if failed or errors:
        lines += ["### Failures", ""]
    lines += [line for s in errors for line in _set_error(s)]
    budget = SUMMARY_BYTES - len("\n".join(lines).encode())
    for shown, test in enumerate(failed):
        block = _failure(test)
        budget -= len("\n".join(block).encode())
        if budget < 0:
            lines += [f"{len(failed) - shown} more failed tests: see the JUnit report.", ""]
            break
        lines += block
    lines += [line for s in result.sets for line in _unused(s)]
    if junit_path is not None:
        lines += [f"JUnit report: <code>{_html(str(junit_path))}</code>", ""]
    return "\n".join(lines)


def _html(text: str) -> str:
    """Text inside HTML (``<summary>``, ``<code>``): one line, no markup."""
    return html.escape(one_line(text), quote=False)


def _cell(text: str) -> str:
    """Text in Markdown (a table cell, a list item): no markup, no column break either."""
    return _html(text).replace("|", "\\|").replace("`", "&#96;")


def _fenced(text: str) -> list[str]:
    """A code block that ``text`` cannot close: its fence is longer than any run of
    backticks inside."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", printable(text).rstrip("\n"), fence]


def _failure(test: TestResult) -> list[str]:
    title = f"<code>{_html(test.set_name)}/{_html(test.name)}</code> {_html(test.request)}"
    message = _html(test.message) or "failed"
    details = test.details
    if len(details) > DETAILS_CHARS:
        cut = len(details) - DETAILS_CHARS
        details = details[:DETAILS_CHARS] + f"\n... {cut} more characters in the JUnit report"
    block = ["<details>", f"<summary>{title}: {message}</summary>", ""]
    block += [f"{_cell(str(test.file))}, line {test.line}", ""]
    if details:
        block += [*_fenced(details), ""]
    return [*block, "</details>", ""]


def _set_error(s: SetResult) -> list[str]:
    block = ["<details>", f"<summary><code>{_html(s.name)}</code> could not be replayed</summary>"]
    block += ["", *_fenced(s.error or ""), ""]
    if s.log_tail:
        block += ["The service's last output:", "", *_fenced(s.log_tail[-DETAILS_CHARS:]), ""]
    return [*block, "</details>", ""]


def _unused(s: SetResult) -> list[str]:
    if not s.unused:
        return []
    lines = [f"### Unused mocks in {_cell(s.name)} ({len(s.unused)})", ""]
    lines += [f"- {_cell(mock)}" for mock in s.unused[:UNUSED_SHOWN]]
    if len(s.unused) > UNUSED_SHOWN:
        lines.append(f"- and {len(s.unused) - UNUSED_SHOWN} more")
    return [*lines, ""]


def write_summary(result: RunResult, env: Mapping[str, str], junit_path: Path | None) -> None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY``, when on GitHub Actions."""
    if on_github(env) and env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(summary_markdown(result, junit_path) + "\n")


def write_outputs(result: RunResult, env: Mapping[str, str], junit_path: Path | None) -> None:
    """Append ``passed``, ``failed``, ``total`` and ``junit`` to ``$GITHUB_OUTPUT``, when on
    GitHub Actions, for later steps' ``if:`` and inputs."""
    outputs = {
        "passed": str(result.passed),
        "failed": str(result.failed),
        "total": str(result.total),
        "junit": one_line(str(junit_path)) if junit_path is not None else "",
    }
    append_outputs(env, outputs)


def append_outputs(env: Mapping[str, str], outputs: Mapping[str, str]) -> None:
    """Append ``name=value`` lines to ``$GITHUB_OUTPUT``, when on GitHub Actions (values of
    one line)."""
    if on_github(env) and env.get("GITHUB_OUTPUT"):
        with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            f.writelines(f"{name}={one_line(value)}\n" for name, value in outputs.items())


def report(
    result: RunResult, env: Mapping[str, str], junit_path: Path | None, out: IO[str]
) -> None:
    """Everything above, on GitHub Actions only; a file whose variable is unset is skipped."""
    if not on_github(env):
        return
    workspace = Path(env["GITHUB_WORKSPACE"]) if env.get("GITHUB_WORKSPACE") else None
    for command in annotations(result, workspace):
        print(command, file=out)
    write_summary(result, env, junit_path)
    write_outputs(result, env, junit_path)
