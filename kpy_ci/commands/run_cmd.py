"""``kpy run``: a command inside a session, redirected to a proxy you run yourself."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path

import click

from kpy_ci.ebpf.maps import Address
from kpy_ci.ebpf.session import Session
from kpy_ci.errors import UsageError
from kpy_ci.proxy.relay import Relay

STOP_GRACE_SECONDS = 10.0


def _address(value: str | None, option: str) -> Address | None:
    if value is None:
        return None
    try:
        return Address.parse(value)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None


def _port_moves(values: tuple[str, ...]) -> dict[int, int]:
    moves = {}
    for value in values:
        public, _, internal = value.partition(":")
        if not (public.isdigit() and internal.isdigit()):
            raise UsageError(f"--move-port {value!r}: expected PUBLIC:INTERNAL, e.g. 8080:18080")
        moves[int(public)] = int(internal)
    return moves


def _passthrough(values: tuple[str, ...]) -> list[tuple[str, int]]:
    rules = []
    for value in values:
        network, port = value, 0
        if value.count(":") == 1 or value.startswith("["):
            parsed = _address(value, "--passthrough")
            assert parsed is not None
            network, port = parsed.host, parsed.port
        rules.append((network, port))
    return rules


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("-c", "--command", "command", required=True, help="Shell command to run.")
@click.option("--proxy", help="HOST:PORT where the command's TCP connections go.")
@click.option("--proxy6", help="IPv6 address for IPv6 sockets (default: the proxy, mapped).")
@click.option("--dns", help="HOST:PORT where the command's DNS queries (UDP 53) go.")
@click.option(
    "--move-port",
    multiple=True,
    help="PUBLIC:INTERNAL: the command's bind() of PUBLIC moves to INTERNAL, and kpy relays "
    "127.0.0.1:PUBLIC to it.",
)
@click.option("--passthrough", multiple=True, help="ADDRESS[/BITS] or HOST:PORT left alone.")
@click.option(
    "--resolv-conf",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A resolv.conf the command sees at /etc/resolv.conf.",
)
def run(
    command: str,
    proxy: str | None,
    proxy6: str | None,
    dns: str | None,
    dns6: str | None,
    move_port: tuple[str, ...],
    passthrough: tuple[str, ...],
    resolv_conf: Path | None,
) -> int:
    """Run COMMAND in its own cgroup with kpy's eBPF programs attached; exit with its code."""
    session = Session(
        _address(proxy, "--proxy"),
        dns=_address(dns, "--dns"),
        ports=_port_moves(move_port),
        passthrough=_passthrough(passthrough),
        proxy6=proxy6,
        dns6=dns6,
    )
    moves = session.ports
    with session, contextlib.ExitStack() as relays:
        for public, internal in moves.items():
            targets = [Address("127.0.0.1", internal), Address("::1", internal)]
            relays.enter_context(Relay(Address("127.0.0.1", public), targets))
        child = session.spawn(command, resolv_conf=resolv_conf)
        try:
            return child.wait()
        except BaseException:
            _stop(child)
            raise


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Ask the command to stop as ^C would; the session kills whatever is left."""
    try:
        child.send_signal(signal.SIGTERM)
        child.wait(STOP_GRACE_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
