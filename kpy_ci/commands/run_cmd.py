"""``kpy run``: a command inside a session, redirected to a proxy you run yourself."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import subprocess
from pathlib import Path

import click

from kpy_ci.address import Address
from kpy_ci.ebpf.maps import pass_key
from kpy_ci.ebpf.session import Session
from kpy_ci.errors import UsageError
from kpy_ci.proxy.relay import Relay

STOP_GRACE_SECONDS = 10.0


def address_option(value: str | None, option: str, version: int | None = 4) -> Address | None:
    """HOST:PORT with an IPv4 host (IPv6 sockets reach it mapped, or use --proxy6/--dns6)."""
    if value is None:
        return None
    try:
        address = Address.parse(value)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None
    if version is not None and ipaddress.ip_address(address.host).version != version:
        raise UsageError(f"{option} {value!r}: expected an IPv{version} address")
    return address


def _ip6(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected an IPv6 address, e.g. ::1") from None
    return value


def _port_moves(values: tuple[str, ...]) -> dict[int, int]:
    moves = {}
    for value in values:
        public, _, internal = value.partition(":")
        ports = [int(p) if p.isdigit() else 0 for p in (public, internal)]
        if not all(0 < p < 65536 for p in ports):
            raise UsageError(
                f"--move-port {value!r}: expected PUBLIC:INTERNAL, two ports from 1 to 65535"
            )
        moves[ports[0]] = ports[1]
    return moves


def passthrough_rules(values: tuple[str, ...]) -> list[tuple[str, int]]:
    """ADDRESS, ADDRESS/BITS (any port), IPV4:PORT or [IPV6]:PORT."""
    rules = []
    for value in values:
        network, port = value, 0
        if value.count(":") == 1 or value.startswith("["):
            try:
                parsed = Address.parse(value)
            except ValueError as e:
                raise UsageError(f"--passthrough: {e}") from None
            network, port = parsed.host, parsed.port
        try:
            pass_key(network, port)
        except ValueError as e:
            raise UsageError(f"--passthrough {value!r}: {e}") from None
        rules.append((network, port))
    return rules


resolv_conf_option = click.option(
    "--resolv-conf",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A resolv.conf the command sees at /etc/resolv.conf (in its own mount namespace).",
)


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("-c", "--command", "command", required=True, help="Shell command to run.")
@click.option("--proxy", help="HOST:PORT where the command's TCP connections go.")
@click.option("--proxy6", help="IPv6 address for IPv6 sockets (default: the proxy, mapped).")
@click.option("--dns", help="HOST:PORT where the command's DNS queries (UDP 53) go.")
@click.option("--dns6", help="IPv6 address for IPv6 DNS sockets (same port as --dns).")
@click.option(
    "--move-port",
    multiple=True,
    help="PUBLIC:INTERNAL: the command's bind() of PUBLIC moves to INTERNAL, and kpy relays "
    "127.0.0.1:PUBLIC to it.",
)
@click.option("--passthrough", multiple=True, help="ADDRESS[/BITS] or IP:PORT left alone.")
@resolv_conf_option
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
    """Run the -c command in its own cgroup with kpy's eBPF programs attached.

    Exits with the command's exit code (128+N if a signal N killed it)."""
    session = Session(
        address_option(proxy, "--proxy"),
        dns=address_option(dns, "--dns"),
        ports=_port_moves(move_port),
        passthrough=passthrough_rules(passthrough),
        proxy6=_ip6(proxy6, "--proxy6"),
        dns6=_ip6(dns6, "--dns6"),
    )
    moves = session.ports
    with session, contextlib.ExitStack() as relays:
        for public, internal in moves.items():
            targets = [Address("127.0.0.1", internal), Address("::1", internal)]
            relays.enter_context(Relay(Address("127.0.0.1", public), targets))
        child = session.spawn(command, resolv_conf=resolv_conf)
        try:
            code = child.wait()
        except BaseException:
            _stop(child)
            raise
    return code if code >= 0 else 128 - code


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Ask the command to stop as ^C would; the session kills whatever is left."""
    try:
        child.send_signal(signal.SIGTERM)
        child.wait(STOP_GRACE_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
