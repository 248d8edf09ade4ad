"""``kpy record``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kpy_ci.commands.run_cmd import address_option, passthrough_rules, resolv_conf_option
from kpy_ci.config import Config
from kpy_ci.config import load as load_config
from kpy_ci.errors import UsageError
from kpy_ci.record import RecordOptions
from kpy_ci.record import record as record_service
from kpy_ci.rerecord import Again, rerecord
from kpy_ci.schema.lock import openapi_documents
from kpy_ci.store.reader import load_set


@click.command()
@click.option(
    "-c", "--command", "command", required=True, help="Shell command starting the service."
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The port the service listens on (required, but with --from-set: the set's).",
)
@click.option("--traffic", help="Shell command exercising the service (BASE_URL is set for it).")
@click.option("--ready-url", help="URL that answers below 500 once the service is ready.")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("kpy"),
    show_default=True,
    help="Where test-sets are written.",
)
@click.option(
    "--set",
    "set_name",
    help="Test-set name (default: the next test-set-N); replaced whole if it exists.",
)
@click.option(
    "--duration", type=float, help="Without --traffic: seconds to record (default: until ^C)."
)
@click.option(
    "--dns-upstream",
    help="HOST:PORT of the resolver for the service's DNS "
    "(default: the first nameserver in /etc/resolv.conf).",
)
@click.option(
    "--passthrough",
    multiple=True,
    help="ADDRESS[/BITS] or IP:PORT the service reaches directly, unrecorded.",
)
@click.option(
    "--from-set",
    "from_set",
    type=click.Path(file_okay=False, path_type=Path),
    help="Re-record this test-set in place, its own requests as the traffic.",
)
@click.option(
    "--tests",
    multiple=True,
    help="With --from-set: only these tests (test-3,test-7 or SET/test-3; repeatable).",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    help="With --from-set: 'NAME: VALUE' for a header the recording redacted (Authorization).",
)
@click.option(
    "--request-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="With --from-set: seconds per request.",
)
@resolv_conf_option
@click.pass_context
def record(
    ctx: click.Context,
    command: str,
    port: int,
    traffic: str | None,
    ready_url: str | None,
    ready_timeout: float,
    path: Path,
    set_name: str | None,
    duration: float | None,
    dns_upstream: str | None,
    passthrough: tuple[str, ...],
    from_set: Path | None,
    tests: tuple[str, ...],
    headers: tuple[str, ...],
    request_timeout: float,
    resolv_conf: Path | None,
) -> int:
    """Record a service's traffic as test cases (inbound HTTP) and mocks (outbound calls)."""
    if set_name is not None and (not set_name or "/" in set_name or set_name.startswith(".")):
        raise UsageError(f"--set {set_name!r}: a test-set name is one path component")
    again = None
    if from_set is not None:
        again, path, set_name, port = _again(ctx, from_set, tests, headers, request_timeout, port)
    elif tests or headers or _given(ctx, "request_timeout"):
        raise UsageError("--tests, --header and --request-timeout go with --from-set")
    if port is None:
        raise UsageError("Missing option '--port'.")
    config = load_config(path)
    options = RecordOptions(
        command=command,
        port=port,
        traffic=traffic,
        ready_url=ready_url,
        ready_timeout=ready_timeout,
        path=path,
        set_name=set_name,
        duration=duration,
        dns_upstream=address_option(dns_upstream, "--dns-upstream", version=None),
        passthrough=passthrough_rules(passthrough) + configured_passthrough(config),
        config=config,
        resolv_conf=resolv_conf,
        openapi_docs=openapi_documents(config),
    )
    if again is not None:
        rerecord(options, again, sys.stderr)
    else:
        record_service(options, sys.stderr)
    return 0


def _again(
    ctx: click.Context,
    from_set: Path,
    tests: tuple[str, ...],
    headers: tuple[str, ...],
    request_timeout: float,
    port: int | None,
) -> tuple[Again, Path, str, int]:
    """--from-set's plan, and the --path (the set's parent: its kpy.yml), --set and --port
    it stands for. Options that make traffic or choose where to write do not go with it."""
    # imported here: test_cmd imports this module
    from kpy_ci.commands.test_cmd import header_option

    for name in ("traffic", "duration", "set_name", "path"):
        if _given(ctx, name):
            shown = {"set_name": "set"}.get(name, name)
            raise UsageError(f"--{shown} does not go with --from-set (it names the set)")
    if port is None:  # the one it was recorded on (the set is read, and checked, again later)
        port = int(load_set(from_set).meta["port"])
    elif not (from_set / "test-set.yaml").is_file():
        raise UsageError(f"{from_set}: no test-set here (no test-set.yaml)")
    again = Again(from_set, tests, header_option(headers), request_timeout)
    return again, from_set.parent, from_set.name, port


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def configured_passthrough(config: Config) -> list[tuple[str, int]]:
    """kpy.yml's passthrough rules; a bad one names the file and the field."""
    try:
        return passthrough_rules(config.passthrough)
    except UsageError as e:
        raise UsageError(f"{config.source}: passthrough: {str(e).partition(': ')[2]}") from None
