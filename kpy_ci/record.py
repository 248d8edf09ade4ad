"""``kpy record`` as a straight line: proxies up, service up in its session, traffic, service
down, everything complete written as a test-set, whatever way the recording ended."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kpy_ci import redact
from kpy_ci.config import Config
from kpy_ci.ebpf.maps import Address
from kpy_ci.ebpf.session import Session
from kpy_ci.errors import KpyError, Terminated
from kpy_ci.proxy.dns import DnsProxy
from kpy_ci.proxy.server import Egress, Ingress, ProxyLoop
from kpy_ci.recording import Recording
from kpy_ci.service import STOP_SECONDS, stop, wait_ready
from kpy_ci.service_log import ServiceLog
from kpy_ci.store import testset


class RecordingFailed(KpyError):
    """The service or the traffic failed; what was complete has been written."""

    exit_code = 1


@dataclass
class RecordOptions:
    command: str
    port: int
    traffic: str | None = None
    ready_url: str | None = None
    ready_timeout: float = 60.0
    path: Path = Path("kpy")
    set_name: str | None = None
    duration: float | None = None
    dns_upstream: Address | None = None
    passthrough: list[tuple[str, int]] = field(default_factory=list)
    config: Config = field(default_factory=Config)
    resolv_conf: Path | None = None


@dataclass
class RecordResult:
    path: Path
    tests: int
    mocks: int
    interrupted: str | None
    warnings: list[str]


def system_resolver(resolv_conf: Path = Path("/etc/resolv.conf")) -> Address | None:
    """The first nameserver of a resolv.conf, as the upstream for the service's DNS."""
    with contextlib.suppress(OSError):
        for line in resolv_conf.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                return Address(fields[1].split("%")[0], 53)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record(opts: RecordOptions, log: IO[str]) -> RecordResult:
    """Record; write the test-set; raise RecordingFailed (after writing) if the service or
    the traffic failed, and let ^C/SIGTERM through (after writing)."""
    return _record(opts, log, ServiceLog(log))


def _record(opts: RecordOptions, log: IO[str], service_log: ServiceLog) -> RecordResult:
    recording = Recording()
    loop = ProxyLoop()
    session: Session | None = None
    interrupted: str | None = None
    failure: str | None = None
    spawned = False

    def lookup(peer: tuple[str, int]) -> Address | None:
        return session.original_destination(peer) if session is not None else None

    try:
        egress = loop.listen(Address("127.0.0.1", 0), Egress(recording, lookup).handle)
        dns_port = None
        upstream = opts.dns_upstream or system_resolver()
        if upstream is not None:
            dns_port = DnsProxy(loop, recording, upstream).start()
        else:
            recording.warn(
                "no DNS resolver known (--dns-upstream): the service's DNS is not recorded"
            )
        internal = free_port()
        session = Session(
            egress,
            dns=Address("127.0.0.1", dns_port) if dns_port else None,
            dns6="::1" if dns_port else None,
            ports={opts.port: internal},
            passthrough=opts.passthrough,
        )
        targets = [Address("127.0.0.1", internal), Address("::1", internal)]
        with session:
            loop.listen(Address("127.0.0.1", opts.port), Ingress(recording, targets).handle)
            service = session.spawn(
                opts.command,
                resolv_conf=opts.resolv_conf,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            spawned = True  # from here on, whatever ends the recording, the set is written
            assert service.stdout is not None
            service_log.start(service.stdout)
            try:
                not_ready = wait_ready(
                    service, internal, opts.ready_url, opts.ready_timeout, service_log, opts.port
                )
                if not_ready is not None:
                    raise RecordingFailed(not_ready)
                print(f"kpy: recording {opts.command!r} on port {opts.port}", file=log)
                failure = _drive(service, opts, log)
            finally:
                stop(service)
                service_log.wait()
    except KeyboardInterrupt:
        interrupted = "interrupted (SIGINT)"
        raise
    except Terminated:
        interrupted = "terminated (SIGTERM)"
        raise
    except RecordingFailed as e:
        interrupted = str(e).split(";")[0]
        raise
    except Exception as e:
        interrupted = f"kpy failed: {e}"
        raise
    finally:
        loop.close()
        if spawned:
            result = _write(recording, opts, interrupted or failure)
            _report(result, log)
    if failure:
        raise RecordingFailed(f"{failure}; what was complete is in {result.path}")
    return result


def _drive(service: subprocess.Popen[Any], opts: RecordOptions, log: IO[str]) -> str | None:
    """Run the traffic (or wait for ^C / --duration); what went wrong, if anything."""
    base_url = f"http://127.0.0.1:{opts.port}"
    if opts.traffic is not None:
        env = {**os.environ, "BASE_URL": base_url, "KPY_PORT": str(opts.port)}
        traffic = subprocess.Popen(opts.traffic, shell=True, env=env)
        try:
            code = traffic.wait()
        except BaseException:
            traffic.terminate()
            try:
                traffic.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                traffic.kill()
                traffic.wait()
            raise
        if service.poll() is not None:
            return f"the service exited with code {service.returncode} during the traffic"
        return f"the traffic command exited with code {code}" if code else None
    print(f"kpy: send traffic to {base_url}; ^C ends the recording", file=log)
    deadline = time.monotonic() + opts.duration if opts.duration else None
    while deadline is None or time.monotonic() < deadline:
        if service.poll() is not None:
            return f"the service exited with code {service.returncode}"
        time.sleep(0.1)
    return None


def _write(recording: Recording, opts: RecordOptions, interrupted: str | None) -> RecordResult:
    recording.finish()
    t0 = recording.started
    inbound = sorted(recording.inbound, key=_start)
    for r in inbound:
        if r.exchange.protocol != "http":
            recording.warnings.append(
                f"an inbound connection was not HTTP/1.1 (connection {r.connection}): "
                "it is not a test case"
            )
    inbound = [r for r in inbound if r.exchange.protocol == "http"]
    name = opts.set_name or testset.next_set_name(opts.path)
    chain = redact.filters(opts.config)
    tests = testset.test_documents(inbound, recording.outbound_started, t0)
    tests = list(redact.apply_all(tests, chain))
    mocks = redact.apply_all(testset.mock_documents(recording.outbound(), t0), chain)
    count = len(recording.outbound_started)
    meta = {
        "name": name,
        "started_at": datetime.datetime.fromtimestamp(
            recording.started_wall, datetime.timezone.utc
        ).isoformat(timespec="milliseconds"),
        "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "port": opts.port,
        "complete": interrupted is None,
        "interrupted": interrupted,
        "tests": len(tests),
        "mocks": count,
        "warnings": recording.warnings,
    }
    try:
        path = testset.write_test_set(opts.path, name, tests, mocks, meta)
    finally:
        recording.close()
    return RecordResult(path, len(tests), count, interrupted, recording.warnings)


def _start(r: Any) -> tuple[int, int, int]:
    return (r.exchange.started, r.connection, r.order)


def _report(result: RecordResult, log: IO[str]) -> None:
    state = (
        f" ({result.interrupted}: every complete exchange was kept)" if result.interrupted else ""
    )
    print(f"kpy: wrote {result.path}: {result.tests} tests, {result.mocks} mocks{state}", file=log)
    for warning in result.warnings:
        print(f"kpy: warning: {warning}", file=log)
