"""kpy's proxy: one asyncio loop in a thread of its own, hosting the egress listener (where
eBPF sends the service's connections), the ingress listener (on the service's public port)
and the DNS listener. Only proxy/ owns sockets and the event loop.

Recording: each TCP connection is spliced to its real destination; every chunk is also
handed to the capture's Tap, which queues it: the loop never decodes. Replay
(``MockEgress``): each connection is answered by its protocol's mock server from the set's
mocks. The proxy knows the recording and the mocks only through interfaces.py.

A connection's protocol is known from whoever speaks first: the client's first bytes, or,
for a server-first protocol (MySQL, SMTP), the server's greeting. So the real server is
dialled as soon as the service connects, and both sides are listened to at once: nobody
waits for a client that is waiting for the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from kpy_ci.address import Address, host_of
from kpy_ci.errors import EnvironmentProblem
from kpy_ci.protocols import generic, http, tls
from kpy_ci.protocols.base import Doc, MockServer, Protocol
from kpy_ci.protocols.registry import BY_NAME, greeting, sniff
from kpy_ci.proxy.interfaces import Capture, Mocks, Tap
from kpy_ci.proxy.tls import (
    Intercepted,
    Interception,
    Opaque,
    Streams,
    Termination,
    TlsFailed,
    TlsStream,
    read_client_hello,
)
from kpy_ci.report.model import Miss
from kpy_ci.trust import ServiceTrust

CHUNK = 256 * 1024
CLOSE_SECONDS = 5.0
IDLE_SECONDS = 0.05  # replay: a generic client this quiet has sent its whole request
T = TypeVar("T")
Lookup = Callable[[tuple[str, int]], Address | None]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when it is installed (libuv: fewer Python calls per relayed chunk), else
    asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ProxyLoop:
    """An event loop in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kpy-proxy", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def listen(
        self,
        address: Address,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> Address:
        """Serve TCP on ``address`` (port 0: any); the address it got."""

        async def start() -> Address:
            server = await asyncio.start_server(
                self._tracked(handler), address.host, address.port, limit=CHUNK
            )
            self._servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
            return Address(host, port)

        try:
            return self.call(start())
        except OSError as e:
            raise EnvironmentProblem(f"kpy cannot listen on {address}: {e.strerror}") from None

    def _tracked(
        self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await handler(reader, writer)
            finally:
                self._writers.discard(writer)
                self._tasks.discard(task)
                writer.close()

        return run

    def close(self) -> None:
        """Stop listening, close every connection, let each handler finish (so what its
        connection carried reaches the recording), stop the loop."""

        async def stop() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.close()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=CLOSE_SECONDS)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(stop(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()


async def _copy(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    record: Callable[[bytes], None] | None,
) -> None:
    try:
        while data := await reader.read(CHUNK):
            if record is not None:
                record(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other side may still answer
    except (ConnectionError, OSError):
        writer.close()


async def splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    tap: Tap | None,
) -> None:
    """Copy both ways until both sides are done; each chunk goes to the tap too."""
    try:
        await asyncio.gather(
            _copy(client[0], upstream[1], tap.client if tap else None),
            _copy(upstream[0], client[1], tap.server if tap else None),
        )
    finally:
        upstream[1].close()
        if tap is not None:
            tap.close()


class Egress:
    """Where eBPF sends the service's connections: find where each was going, sniff its
    protocol (inside TLS, which kpy ends on both sides: proxy/tls.py), connect there,
    splice, record."""

    def __init__(
        self, recording: Capture, lookup: Lookup, interception: Interception | None = None
    ) -> None:
        self.recording = recording
        self.lookup = lookup
        self.tls = interception or Interception(ServiceTrust.of(os.environ))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        destination = self.lookup((peer[0], peer[1]))
        if destination is None:
            self.recording.warn(f"a connection from {peer[0]}:{peer[1]} had no destination")
            return
        try:
            await self._relay((reader, writer), destination)
        except OSError as e:
            self.recording.warn(f"the service's connection to {destination} failed: {e}")
        except TlsFailed as e:
            self.recording.warn(str(e))

    async def _relay(self, client: Streams, destination: Address) -> None:
        async def dial() -> Streams:
            return await asyncio.open_connection(destination.host, destination.port, limit=CHUNK)

        dialled = [await dial()]

        async def connect() -> Streams:
            """The connection dialled when the service connected, then new ones (TLS
            interception may need a second): never a second one where one will do."""
            return dialled.pop() if dialled else await dial()

        first, greeting_bytes = await first_words(client[0], dialled[0][0])
        if greeting_bytes:
            return await self._greeted(client, await connect(), greeting_bytes, first, destination)
        upstream: Streams | None = None
        info: Doc | None = None
        if tls.sniff(first):
            hello = await read_client_hello(first, client[0])
            outcome = await self.tls.intercept(hello, client, connect, destination)
            if isinstance(outcome, Opaque):
                return await self._opaque(outcome, hello, client, connect, destination)
            self._warn_of(outcome)
            client, upstream, info = self._inside(outcome)
            if info["alpn"] == "h2":  # its server speaks first too: its SETTINGS
                self.recording.warn(
                    f"{info['server_name'] or destination} chose HTTP/2 (ALPN h2): recorded "
                    "as generic bytes; kpy does not replay HTTP/2 yet"
                )
                tap = self.recording.open(generic.PROTOCOL, "outbound", destination, info)
                return await splice(client, upstream, tap)
            first, said = await first_words(outcome.client, outcome.upstream)
            if said:  # a server-first protocol inside TLS (SMTPS, IMAPS)
                return await self._greeted(client, upstream, said, first, destination, info)
        protocol = sniff(first)
        tap = self.recording.open(protocol, "outbound", destination, info)
        try:
            first = await self._answer_locally(protocol, first, client, tap)
            starttls = protocol.starttls(first) if info is None else None
            if starttls is not None:
                inside = await self._starttls(starttls, first, client, connect, destination, tap)
                if inside is None:
                    return
                client, upstream, first = inside
            if upstream is None:
                upstream = await connect()
        except BaseException:
            tap.close()
            raise
        if first:
            tap.client(first)
            upstream[1].write(first)
        await splice(client, upstream, tap)

    async def _greeted(
        self,
        client: Streams,
        upstream: Streams,
        said: bytes,
        first: bytes,
        destination: Address,
        info: Doc | None = None,
    ) -> None:
        """The server spoke first: its greeting names the protocol, which may relay it
        edited (MySQL: without the TLS and compression kpy cannot follow)."""
        protocol = greeting(said, destination.port)
        while (edited := protocol.edit_greeting(said)) is None:
            more = await upstream[0].read(CHUNK)
            if not more:
                edited = said
                break
            said += more
        tap = self.recording.open(protocol, "outbound", destination, info)
        tap.server(edited)
        client[1].write(edited)
        if first:  # the client did not wait for the greeting after all
            tap.client(first)
            upstream[1].write(first)
        await splice(client, upstream, tap)

    def _warn_of(self, outcome: Intercepted) -> None:
        """An upstream the service would reject: its defect is copied, and said so."""
        if outcome.warning:
            self.recording.warn(outcome.warning)

    @staticmethod
    def _inside(outcome: Intercepted) -> tuple[Streams, Streams, Doc]:
        """The two TLS streams, each standing for a reader and a writer."""
        c, u = outcome.client, outcome.upstream
        return (c, c), (u, u), outcome.info  # type: ignore[return-value]

    async def _starttls(
        self,
        asked: tuple[int, bytes],
        first: bytes,
        client: Streams,
        connect: Callable[[], Awaitable[Streams]],
        destination: Address,
        tap: Tap,
    ) -> tuple[Streams, Streams, bytes] | None:
        """A request for TLS inside the protocol (PostgreSQL's SSLRequest): asked of the
        real server, its answer relayed; on yes, TLS begins on both sides. None: the
        connection was relayed as it is, and is over."""
        size, yes = asked
        request, rest = first[:size], first[size:]

        async def connect_asking() -> Streams:
            streams = await connect()
            streams[1].write(request)
            if await streams[0].readexactly(len(yes)) != yes:
                raise ConnectionError(f"{destination} refused TLS when asked again")
            return streams

        upstream = await connect()
        upstream[1].write(request)
        tap.client(request)
        answer = await upstream[0].read(len(yes))
        if not answer:
            raise ConnectionError(f"{destination} closed the connection when asked for TLS")
        tap.server(answer)
        client[1].write(answer)
        await client[1].drain()
        if answer != yes:
            return client, upstream, rest
        hello = await read_client_hello(rest or await client[0].read(CHUNK), client[0])
        opened = [upstream]

        async def again() -> Streams:
            return opened.pop() if opened else await connect_asking()

        outcome = await self.tls.intercept(hello, client, again, destination)
        if isinstance(outcome, Opaque):
            await self._opaque(outcome, hello, client, again, destination, tap)
            return None
        self._warn_of(outcome)
        tap.tls(outcome.info)
        inside_client, inside_upstream, _ = self._inside(outcome)
        return inside_client, inside_upstream, b""

    async def _opaque(
        self,
        outcome: Opaque,
        hello: bytes,
        client: Streams,
        connect: Callable[[], Awaitable[Streams]],
        destination: Address,
        tap: Tap | None = None,
    ) -> None:
        """TLS kpy cannot end, relayed as it is: its mocks say so, and replay fails the
        test that needs them with that reason."""
        self.recording.warn(f"{outcome.reason}; relayed as it is (tls: opaque)")
        info: Doc = {"server_name": outcome.server_name, "opaque": True, "reason": outcome.reason}
        if tap is None:
            tap = self.recording.open(generic.PROTOCOL, "outbound", destination, info)
        else:
            tap.tls(info)
        try:
            upstream = await connect()
        except BaseException:
            tap.close()
            raise
        tap.client(hello)
        upstream[1].write(hello)
        await splice(client, upstream, tap)

    async def _answer_locally(
        self, protocol: Protocol, first: bytes, client: Streams, tap: Tap
    ) -> bytes:
        """Some opening requests are kpy's to answer (PostgreSQL's GSSENCRequest gets 'N':
        kpy cannot take part in GSSAPI encryption, and the client goes on without)."""
        reader, writer = client
        while (local := protocol.answer_locally(first)) is not None:
            used, answer = local
            tap.client(first[:used])
            tap.server(answer)
            writer.write(answer)
            await writer.drain()
            first = first[used:] or await reader.read(CHUNK)
        return first


async def first_words(
    client: asyncio.StreamReader | TlsStream, server: asyncio.StreamReader | TlsStream
) -> tuple[bytes, bytes]:
    """What the client and the server each said first, listening to both until one speaks
    (or hangs up); the other's is b"" unless it spoke in the same moment. A read cancelled
    before its data came loses nothing: the bytes wait in the reader (a TlsStream's too: it
    is cancelled only where it waits for its raw reader)."""
    reads = [asyncio.ensure_future(r.read(CHUNK)) for r in (client, server)]
    try:
        await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for read in reads:
            read.cancel()
    said = []
    for read in reads:
        try:
            said.append(await read)
        except asyncio.CancelledError:
            said.append(b"")
    return said[0], said[1]


@dataclass(frozen=True)
class Source:
    """A mock server's view of the store: one connection's protocol and destination."""

    store: Mocks
    protocol: str
    destination: str
    connection: int

    def serve(self, request: Doc, *, optional: bool = False) -> Doc | None:
        return self.store.serve(self.protocol, self.destination, self.connection, request, optional)

    def next_on_connection(self, mock: Doc) -> Doc | None:
        return self.store.next_on_connection(mock)

    def miss(self, request: Doc) -> None:
        self.store.miss(self.protocol, self.destination, self.connection, request)


class MockEgress:
    """Replay: where eBPF sends the service's connections. Each is answered from the mocks
    by its protocol's mock server; none goes anywhere else."""

    def __init__(
        self, store: Mocks, lookup: Lookup, termination: Termination | None = None
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.termination = termination or Termination()
        self._connections = itertools.count(1)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        destination = self.lookup((peer[0], peer[1]))
        if destination is None:
            return  # not the service's (eBPF sent it no connection from there): closed unanswered
        where = str(destination)
        connection = next(self._connections)
        self.store.opened(connection, where)
        hung_up = False
        try:
            hung_up = await self._answer(reader, writer, where, connection)
        finally:
            self.store.closed(connection, hung_up)

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        where: str,
        connection: int,
    ) -> bool:
        """Answer the connection until one side ends; whether kpy's side did."""
        protocol: Protocol = generic.PROTOCOL
        client: Streams = (reader, writer)
        try:
            # a server-first protocol recorded for this destination greets at once, as its
            # server did (inside TLS when it was recorded so); any other waits for the
            # client's first bytes, however slow (a loaded machine must not turn a
            # PostgreSQL client into generic TCP)
            if self.store.recorded_tls(where) is None and (
                greeted := self._greeter(where, connection)
            ):
                protocol, greeter, hello = greeted
                return await self._serve(greeter, hello, client)
            first = await reader.read(CHUNK)
            if tls.sniff(first):
                inside = await self._end_tls(first, client, where, connection, None)
                if inside is None:
                    return True
                client = inside
                if greeted := self._greeter(where, connection):
                    protocol, greeter, hello = greeted
                    return await self._serve(greeter, hello, client)
                first = await client[0].read(CHUNK)
            if not first:
                return False
            protocol = sniff(first)
            asked = protocol.starttls(first)
            if asked is not None and self.store.recorded_tls(where) is not None:
                size, yes = asked  # recorded over TLS: say yes, and end it here
                client[1].write(yes)
                await client[1].drain()
                rest = first[size:] or await client[0].read(CHUNK)
                inside = await self._end_tls(rest, client, where, connection, protocol.name)
                if inside is None:
                    return True
                client = inside
                first = await client[0].read(CHUNK)
            server = protocol.mock_server(Source(self.store, protocol.name, where, connection))
            return await self._serve(server, server.client_data(first), client)
        except (ConnectionError, OSError):
            return False
        except Exception as e:  # bytes the mock server cannot read: the call fails
            call = f"kpy could not read what the service sent: {e}"
            self.store.add_miss(Miss(protocol.name, where, connection, call))
            return True

    def _greeter(self, where: str, connection: int) -> tuple[Protocol, MockServer, bytes] | None:
        """The mock server of a protocol recorded for this destination that speaks first,
        and what it says."""
        for name in self.store.protocols_at(where):
            server = BY_NAME[name].mock_server(Source(self.store, name, where, connection))
            if hello := server.opening():
                return BY_NAME[name], server, hello
        return None

    async def _end_tls(
        self, first: bytes, client: Streams, where: str, connection: int, protocol: str | None
    ) -> Streams | None:
        """End the service's TLS with a leaf for the name it asks for, offering what the
        recording's server chose (ALPN); the plain streams inside. None: it cannot be
        replayed, and the test fails saying why."""
        hello_bytes = await read_client_hello(first, client[0])
        hello = tls.parse_client_hello(hello_bytes)
        # a client without SNI checks the address it dialled, as it wrote it
        name = hello.server_name or host_of(where)
        recorded = self.store.recorded_tls(where, hello.server_name) or {}
        why = None
        if recorded.get("opaque"):
            why = f"recorded as TLS kpy could not end (tls: opaque): {recorded.get('reason')}"
        alpn = recorded.get("alpn")
        if alpn is None and "http/1.1" in hello.alpn:
            alpn = "http/1.1"
        if alpn == "h2":
            why = "HTTP/2 (ALPN h2): kpy records it, but does not replay it yet"
        if alpn is not None and alpn not in hello.alpn:
            alpn = None
        if why is not None:
            self.store.add_miss(Miss(protocol or "tls", where, connection, f"TLS to {name}: {why}"))
            return None
        context = self.termination.for_name(name, (alpn,) if alpn else ())
        try:
            stream = await self.termination.terminate(client, hello_bytes, context)
        except TlsFailed as e:
            self.store.add_miss(Miss(protocol or "tls", where, connection, str(e)))
            return None
        return stream, stream  # type: ignore[return-value]

    @staticmethod
    async def _serve(server: MockServer, answer: bytes, client: Streams) -> bool:
        """Send ``answer``, then answer each chunk the client sends until one side ends;
        whether the server did (it hung up)."""
        reader, writer = client
        while True:
            if answer:
                writer.write(answer)
                await writer.drain()
            if server.closed:
                return True
            try:
                data = await asyncio.wait_for(reader.read(CHUNK), IDLE_SECONDS)
            except asyncio.TimeoutError:
                answer = server.idle()
                continue
            if not data:
                return False
            answer = server.client_data(data)


class Ingress:
    """On the service's public port: relay to where the service really listens (the first
    of ``targets`` that accepts: it may have bound IPv4, IPv6 or both) and, when recording,
    record each HTTP exchange as a test case."""

    def __init__(self, recording: Capture | None, targets: list[Address]) -> None:
        self.recording = recording
        self.targets = targets

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for target in self.targets:
            try:
                upstream = await asyncio.open_connection(target.host, target.port, limit=CHUNK)
                break
            except OSError:
                continue
        else:
            if self.recording is not None:
                self.recording.warn(f"the service did not accept a connection on {self.targets}")
            return
        tap = None
        if self.recording is not None:
            tap = self.recording.open(http.PROTOCOL, "inbound", self.targets[0])
        await splice((reader, writer), upstream, tap)
