"""The ``kpy`` command. Thin: parse, call the services, map errors to exit codes.

Exit codes: 0 passed, 1 failed, 2 usage or bad files, 3 re-record needed, 4 environment,
70 a bug in kpy (with a traceback), 130 interrupted (^C), 143 terminated (SIGTERM).
``kpy run`` returns its command's own exit code.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

import click

from kpy_ci import __version__
from kpy_ci.commands import (
    doctor_cmd,
    drift_cmd,
    record_cmd,
    report_cmd,
    run_cmd,
    test_cmd,
    validate_cmd,
)
from kpy_ci.errors import KpyError, Terminated

EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED = 70, 130, 143
DSN_VARIABLE = "KPY_DSN"
"""--dsn's default: taken out of kpy's environment at once, so the service, which inherits
that environment, never sees a DSN meant for kpy alone."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@click.group()
@click.version_option(__version__, prog_name="kpy")
def cli() -> None:
    """kpy turns a service's real traffic into regression tests."""


cli.add_command(doctor_cmd.doctor)
cli.add_command(run_cmd.run)
cli.add_command(record_cmd.record)
cli.add_command(test_cmd.test)
cli.add_command(report_cmd.report)
cli.add_command(validate_cmd.validate)
cli.add_command(drift_cmd.drift)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    # a background job of a non-interactive shell inherits SIGINT ignored; kpy wants ^C
    signal.signal(signal.SIGINT, signal.default_int_handler)
    dsn = os.environ.pop(DSN_VARIABLE, None)
    defaults = {name: {"dsn": dsn} for name in ("drift", "test")} if dsn else None
    try:
        result = cli.main(
            list(argv if argv is not None else sys.argv[1:]),
            "kpy",
            standalone_mode=False,
            default_map=defaults,
        )
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("kpy: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Terminated:
        click.echo("kpy: terminated", err=True)
        return EXIT_TERMINATED
    except KpyError as e:
        click.echo(f"kpy: {e}", err=True)
        return e.exit_code
    except Exception:
        traceback.print_exc()
        click.echo(
            "kpy: internal error (a bug in kpy; please report it with the trace above)", err=True
        )
        return EXIT_BUG
    return result if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main())
