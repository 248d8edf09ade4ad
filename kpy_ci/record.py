"""``kpy record`` as a straight line: proxies up, service up in its session, traffic, service
down, everything complete written as a test-set, whatever way the recording ended."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kpy_ci import redact
from kpy_ci.address import Address
from kpy_ci.config import Config
from kpy_ci.errors import KpyError, Terminated
from kpy_ci.proxy.dns import DnsProxy
from kpy_ci.proxy.server import Egress, Ingress
from kpy_ci.proxy.tls import Interception
from kpy_ci.recording import Recording
from kpy_ci.report import github
from kpy_ci.schema import lock, openapi
from kpy_ci.service import STOP_SECONDS
from kpy_ci.service_log import ServiceLog
from kpy_ci.store import testset
from kpy_ci.under_kpy import UnderKpy


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
    openapi_docs: dict[str, openapi.Document] = field(default_factory=dict)
    """The OpenAPI documents kpy.yml names, by host, read before the service starts."""


@dataclass
class RecordResult:
    path: Path
    tests: int
    mocks: int
    interrupted: str | None
    warnings: list[str]
    written: bool = True
    """False when nothing was written (a re-recording that did not end normally)."""

    @property
    def where(self) -> str:
        """Where what was complete is, for the message of a failure."""
        return f"what was complete is in {self.path}" if self.written else f"{self.path} untouched"


Driver = Callable[[subprocess.Popen[Any], str, IO[str]], str | None]
"""What makes the traffic, given the running service and kpy's address for it (BASE_URL);
it returns what went wrong, if anything (the recording then ends as failed), and may raise
KeyboardInterrupt / Terminated."""

Writer = Callable[[Recording, str | None], RecordResult]
"""What becomes of a recording that started the service, however it ended (``interrupted``
says why, when not normally): the set written, or left as it is."""


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

    def write(recording: Recording, interrupted: str | None) -> RecordResult:
        result = _write(recording, opts, interrupted)
        _report(result, log)
        return result

    return run(opts, log, traffic_driver(opts), write)


def run(
    opts: RecordOptions,
    log: IO[str],
    drive: Driver,
    write: Writer,
    service_log: ServiceLog | None = None,
) -> RecordResult:
    """The recording itself: proxies up, the service up in its session, ``drive``, the
    service down, then ``write`` (once the service has started, whatever happened)."""
    service_log = service_log or ServiceLog(log)
    recording = Recording()
    interrupted: str | None = None
    failure: str | None = None
    spawned = False
    try:
        with UnderKpy(opts.config.tls_ca_files, service_log) as kpy:
            interception = Interception(
                kpy.trusted.trust, kpy.termination, set(opts.config.tls_opaque)
            )
            egress = kpy.loop.listen(
                Address("127.0.0.1", 0), Egress(recording, kpy.lookup, interception).handle
            )
            dns_port = None
            upstream = opts.dns_upstream or system_resolver()
            if upstream is not None:
                dns_port = DnsProxy(kpy.loop, recording, upstream).start()
            else:
                recording.warn(
                    "no DNS resolver known (--dns-upstream): the service's DNS is not recorded"
                )
            internal = free_port()
            dns = Address("127.0.0.1", dns_port) if dns_port else None
            kpy.session(egress, dns, {opts.port: internal}, opts.passthrough)
            targets = [Address("127.0.0.1", internal), Address("::1", internal)]
            kpy.loop.listen(Address("127.0.0.1", opts.port), Ingress(recording, targets).handle)
            service = kpy.spawn(opts.command, opts.resolv_conf)
            spawned = True  # from here on, whatever ends the recording, the set is written
            not_ready = kpy.ready(internal, opts.ready_url, opts.ready_timeout, opts.port)
            if not_ready is not None:
                raise RecordingFailed(not_ready)
            print(f"kpy: recording {opts.command!r} on port {opts.port}", file=log)
            failure = drive(service, f"http://127.0.0.1:{opts.port}", log)
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
        if spawned:
            result = write(recording, interrupted or failure)
            # a later step (upload, pull request) uses the set, also one written incomplete
            github.append_outputs(os.environ, {"set-path": str(result.path)})
    if failure:
        raise RecordingFailed(f"{failure}; {result.where}")
    return result


def traffic_driver(opts: RecordOptions) -> Driver:
    """--traffic's command, or, without it, a wait for ^C or --duration."""
    if opts.traffic is not None:
        return command_driver(opts.traffic, opts.port)
    return wait_driver(opts.duration)


def command_driver(command: str, port: int) -> Driver:
    """Run a shell command with BASE_URL and KPY_PORT; it failing fails the recording."""

    def drive(service: subprocess.Popen[Any], base_url: str, log: IO[str]) -> str | None:
        env = {**os.environ, "BASE_URL": base_url, "KPY_PORT": str(port)}
        traffic = subprocess.Popen(command, shell=True, env=env)
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

    return drive


def wait_driver(duration: float | None) -> Driver:
    """Record what others send, for ``duration`` seconds or until ^C."""

    def drive(service: subprocess.Popen[Any], base_url: str, log: IO[str]) -> str | None:
        print(f"kpy: send traffic to {base_url}; ^C ends the recording", file=log)
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            if service.poll() is not None:
                return f"the service exited with code {service.returncode}"
            time.sleep(0.1)
        return None

    return drive


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
    redact.keep_issued(tests, [r.exchange.credentials for r in inbound], opts.config)
    locked = lock.LockBuilder(opts.openapi_docs)
    mocks = locked.observe(
        redact.apply_all(testset.mock_documents(recording.outbound(), t0), chain)
    )
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
        path = testset.write_test_set(
            opts.path,
            name,
            tests,
            mocks,
            meta,
            lambda: lock.lock_files(locked, opts.config, os.environ, recording.warnings),
        )
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
