"""A TCP relay from a public port to the service's moved one: the ingress side of a session.

The service binds port P; eBPF moves that bind to an internal port P'. The relay stands on
P and copies bytes both ways, so clients reach the service on the port they always used.
It runs its own event loop in a thread, so blocking callers (the CLI) can hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from kpy_ci.ebpf.maps import Address
from kpy_ci.errors import EnvironmentProblem

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other side may still answer
    except (ConnectionError, OSError):
        writer.close()


class Relay:
    """Listen on ``public`` and forward each connection to the first of ``targets`` that
    accepts (the service may have bound IPv4, IPv6 or both)."""

    def __init__(self, public: Address, targets: list[Address]) -> None:
        self.public = public
        self.targets = targets
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kpy-relay", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> Relay:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        try:
            future.result()
        except OSError as e:
            self.close()
            raise EnvironmentProblem(f"cannot listen on {self.public}: {e.strerror}") from None
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.public.host, self.public.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for target in self.targets:
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection(target.host, target.port)
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
                self._open.discard(w)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._open):
                w.close()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
