"""``kpy validate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kpy_ci.commands.drift_cmd import path_option
from kpy_ci.config import load as load_config
from kpy_ci.schema.validate import validate_path

EXIT_INVALID = 2


@click.command()
@path_option
@click.option("--set", "set_name", help="Only this test-set.")
def validate(path: Path, set_name: str | None) -> int:
    """Check every file against schemas/, HTTP mocks against their dependency's OpenAPI
    document, test cases against the service's, and PostgreSQL mocks against the lock.

    Exit 0: all valid; 2: a problem, one line each (file:line: field: why).
    """
    config = load_config(path)
    problems = validate_path(path, set_name, config)
    for problem in problems:
        print(f"kpy: {problem}", file=sys.stderr)
    if problems:
        print(f"kpy: {len(problems)} problems", file=sys.stderr)
        return EXIT_INVALID
    print(f"kpy: {path}: every file is valid", file=sys.stderr)
    return 0
