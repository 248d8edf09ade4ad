"""kpy's DNS port: where eBPF sends the service's DNS queries. Recording, each query is
forwarded to the upstream resolver, its answer relayed back and recorded; at replay
(``MockDns``) it is answered from the mocks, and a name never resolved gets SERVFAIL and
fails the test. It listens on 127.0.0.1 and ::1 on one port, as the session's dns/dns6
settings expect. Each datagram goes through the DNS plug-in's recorder or mock server with
the length DNS over TCP puts in front (protocols/dns)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kpy_ci.address import Address
from kpy_ci.errors import EnvironmentProblem
from kpy_ci.protocols import dns
from kpy_ci.protocols.base import ProtocolError
from kpy_ci.proxy.interfaces import Capture, Mocks
from kpy_ci.proxy.server import ProxyLoop, Source

UPSTREAM_SECONDS = 5.0


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: DnsPort) -> None:
        self.proxy = proxy
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        task = asyncio.ensure_future(self.proxy.answer(data, addr, self.transport))
        self.proxy.pending.add(task)  # a task nobody holds may be collected mid-flight
        task.add_done_callback(self.proxy.pending.discard)


class DnsPort:
    """kpy's DNS port on the proxy's loop; ``answer`` says what each query gets."""

    def __init__(self, loop: ProxyLoop) -> None:
        self.loop = loop
        self.pending: set[asyncio.Future[None]] = set()

    async def answer(self, query: bytes, client: Any, transport: asyncio.DatagramTransport) -> None:
        raise NotImplementedError

    def start(self) -> int:
        """Listen on 127.0.0.1 and ::1 on one free port; the port."""

        async def bind() -> int:
            loop = asyncio.get_running_loop()
            for _ in range(50):
                v4, _ = await loop.create_datagram_endpoint(
                    lambda: _Listener(self), local_addr=("127.0.0.1", 0)
                )
                port = v4.get_extra_info("sockname")[1]
                try:
                    await loop.create_datagram_endpoint(
                        lambda: _Listener(self), local_addr=("::1", port)
                    )
                except OSError:
                    v4.close()
                    continue
                return int(port)
            raise EnvironmentProblem("no UDP port free on both 127.0.0.1 and ::1 for DNS")

        return self.loop.call(bind())


class DnsProxy(DnsPort):
    """Recording: each query forwarded to ``upstream``, its answer relayed and recorded."""

    def __init__(self, loop: ProxyLoop, recording: Capture, upstream: Address) -> None:
        super().__init__(loop)
        self.recording = recording
        self.upstream = upstream

    async def answer(self, query: bytes, client: Any, transport: asyncio.DatagramTransport) -> None:
        started = time.monotonic_ns()
        loop = asyncio.get_running_loop()
        sock, upstream = await loop.create_datagram_endpoint(
            _Upstream, remote_addr=(self.upstream.host, self.upstream.port)
        )
        try:
            sock.sendto(query)
            answer = await asyncio.wait_for(upstream.answer, UPSTREAM_SECONDS)
        except (asyncio.TimeoutError, OSError) as e:
            self.recording.warn(f"DNS upstream {self.upstream} did not answer: {e!r}")
            return
        finally:
            sock.close()
        transport.sendto(answer, client)
        recorder = dns.DnsRecorder()
        try:
            recorder.client_data(dns.framed(query), started)
            exchanges = recorder.server_data(dns.framed(answer), time.monotonic_ns())
        except ProtocolError as e:
            self.recording.warn(f"a DNS message kpy could not read: {e}")
            return
        for exchange in exchanges:
            self.recording.add(exchange, self.upstream)


class MockDns(DnsPort):
    """Replay: answers from the set's DNS mocks; asks no resolver."""

    def __init__(self, loop: ProxyLoop, store: Mocks) -> None:
        super().__init__(loop)
        self.server = dns.DnsMockServer(Source(store, dns.NAME, "the resolver", 0))

    async def answer(self, query: bytes, client: Any, transport: asyncio.DatagramTransport) -> None:
        answers, _ = dns.unframed(self.server.client_data(dns.framed(query)))
        for answer in answers:
            transport.sendto(answer, client)
