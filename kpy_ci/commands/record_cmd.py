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


@click.command()
@click.option(
    "-c", "--command", "command", required=True, help="Shell command starting the service."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), required=True, help="The port the service listens on."
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
@resolv_conf_option
def record(
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
    resolv_conf: Path | None,
) -> int:
    """Record a service's traffic as test cases (inbound HTTP) and mocks (outbound calls)."""
    if set_name is not None and (not set_name or "/" in set_name or set_name.startswith(".")):
        raise UsageError(f"--set {set_name!r}: a test-set name is one path component")
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
    )
    record_service(options, sys.stderr)
    return 0


def configured_passthrough(config: Config) -> list[tuple[str, int]]:
    """kpy.yml's passthrough rules; a bad one names the file and the field."""
    try:
        return passthrough_rules(config.passthrough)
    except UsageError as e:
        raise UsageError(f"{config.source}: passthrough: {str(e).partition(': ')[2]}") from None
