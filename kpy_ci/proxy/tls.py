"""TLS on the proxy's connections: kpy ends the service's TLS with a leaf of its session's
CA and, when recording, begins its own to the real server, checked as the service would
have checked it. What flows between is plain, so the protocols inside are recorded and
replayed as on any connection.

OpenSSL runs over memory buffers (``ssl.MemoryBIO``) fed from the asyncio streams the proxy
already holds, so TLS can begin at any point of a connection: at its first byte, or after
PostgreSQL's SSLRequest was answered 'S'. ``TlsStream`` offers the part of the
StreamReader/StreamWriter interface that the proxy uses, so the rest of it does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kpy_ci.address import Address, plain_ip
from kpy_ci.certificates import Authority, Issuer, Leaf, leaf_for, leaf_like, server_context
from kpy_ci.protocols import tls
from kpy_ci.protocols.base import Doc
from kpy_ci.trust import ServiceTrust

CHUNK = 256 * 1024
HANDSHAKE_SECONDS = 10.0
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# OpenSSL's verify codes for defects a leaf can carry while kpy's CA still signs it
NOT_YET_VALID, EXPIRED, HOSTNAME_MISMATCH = 9, 10, 62
IP_ADDRESS_MISMATCH = 64
CA_SIGNED_DEFECTS = (NOT_YET_VALID, EXPIRED, HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH)
"""Defects of a certificate whose issuer the service's trust knows: kpy's leaf copies
them exactly. For any other (an issuer the trust kpy knows does not hold), the service
may still trust the issuer through a file of its own."""
SELF_SIGNED, SELF_SIGNED_IN_CHAIN = 18, 19
HANDSHAKE, CERTIFICATE_REQUEST = 22, 13  # a TLS record's content type, a message's type
COMMON_ALPN = ((), ("http/1.1",), ("h2", "http/1.1"))
"""What clients offer most (none: Node's https, libpq, redis-py): their verifying contexts
are made before the service starts, not on its first connection (loading a CA bundle
takes tens of milliseconds)."""

_asked_for_certificate: weakref.WeakSet[ssl.SSLObject] = weakref.WeakSet()


def _watch(
    conn: ssl.SSLObject, direction: str, version: object, content_type: int, kind: int, _: bytes
) -> None:
    """OpenSSL's message callback: note a server's CertificateRequest, which TLS 1.3
    encrypts, and which a client without a certificate only hears of after its handshake
    is done (the server's alert comes with the first read)."""
    if direction == "read" and content_type == HANDSHAKE and kind == CERTIFICATE_REQUEST:
        _asked_for_certificate.add(conn)


def watching(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, telling :func:`asked_for_certificate` what its servers asked. The hook
    is CPython's (``_msg_callback``, there since 3.8); without it, a server that demands a
    certificate is seen only when it refuses kpy."""
    if hasattr(context, "_msg_callback"):
        context._msg_callback = _watch
    return context


def asked_for_certificate(stream: TlsStream) -> bool:
    return stream.ssl_object in _asked_for_certificate


class TlsFailed(Exception):
    """The handshake with one side failed; the message says which and why."""


class TlsStream:
    """One side of a connection inside TLS: reads and writes plain bytes."""

    def __init__(self, raw: Streams, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None, received: bytes = b"") -> None:  # fmt: skip
        self._reader, self._writer = raw
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._in.write(received)
        self._ssl = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self._eof = False

    @property
    def ssl_object(self) -> ssl.SSLObject:
        return self._ssl

    async def handshake(self) -> None:
        async def steps() -> None:
            while True:
                try:
                    self._ssl.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._send()
                    if not await self._receive():
                        raise ConnectionResetError(
                            "the peer closed during the TLS handshake"
                        ) from None
            await self._send()

        try:
            await asyncio.wait_for(steps(), HANDSHAKE_SECONDS)
        except ssl.SSLError:
            await self._send()  # the alert that says why, as OpenSSL wrote it
            raise

    async def read(self, n: int = CHUNK) -> bytes:
        """Plain bytes; b"" once the peer has closed (with close_notify or not)."""
        while not self._eof:
            try:
                return self._ssl.read(n)
            except ssl.SSLWantReadError:
                await self._send()  # TLS 1.3 may answer a key update
                if not await self._receive():
                    self._eof = True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True
        return b""

    def write(self, data: bytes) -> None:
        self._ssl.write(data)
        self._writer.write(self._out.read())

    async def drain(self) -> None:
        await self._writer.drain()

    def can_write_eof(self) -> bool:
        return self._writer.can_write_eof()

    def write_eof(self) -> None:
        """close_notify, then the TCP half-close: the peer may still answer."""
        with contextlib.suppress(ssl.SSLError):  # it waits for the peer's close_notify
            self._ssl.unwrap()
        self._writer.write(self._out.read())
        self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._writer.get_extra_info(name, default)

    async def _send(self) -> None:
        pending = self._out.read()
        if pending:
            self._writer.write(pending)
            await self._writer.drain()

    async def _receive(self) -> bool:
        data = await self._reader.read(CHUNK)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True


async def read_client_hello(first: bytes, reader: asyncio.StreamReader) -> bytes:
    """``first`` grown until it holds the whole first TLS record (a ClientHello with
    post-quantum key shares may come in more than one segment)."""
    data = bytearray(first)
    while (size := tls.hello_size(bytes(data))) is None or len(data) < size:
        more = await reader.read(CHUNK)
        if not more:
            break
        data += more
    return bytes(data)


@dataclass
class Termination:
    """kpy's side of the service's TLS: the session's CA and the leaves minted from it,
    one context per (leaf, ALPN) kept for the session."""

    authority: Authority = field(default_factory=Authority)
    _contexts: dict[tuple[Leaf, tuple[str, ...]], ssl.SSLContext] = field(default_factory=dict)
    _leaves: dict[str, Leaf] = field(default_factory=dict)

    def leaf(self, name: str) -> Leaf:
        """The leaf for ``name``, valid now, one for the session."""
        if name not in self._leaves:
            self._leaves[name] = leaf_for(name)
        return self._leaves[name]

    def context(self, leaf: Leaf, alpn: tuple[str, ...]) -> ssl.SSLContext:
        key = (leaf, alpn)
        if key not in self._contexts:
            self._contexts[key] = server_context(self.authority.issue(leaf), alpn)
        return self._contexts[key]

    def for_name(self, name: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
        """A context showing a leaf for ``name`` valid now (replay: no real server)."""
        return self.context(self.leaf(name), alpn)

    async def terminate(
        self, raw: Streams, hello_bytes: bytes, context: ssl.SSLContext
    ) -> TlsStream:
        """The service's TLS, ended by kpy: ``hello_bytes`` are what it sent so far."""
        stream = TlsStream(raw, context, server_side=True, received=hello_bytes)
        try:
            await stream.handshake()
        except (ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
            stream.close()
            raise TlsFailed(f"the service's TLS handshake with kpy failed: {_why(e)}") from None
        return stream


@dataclass(frozen=True)
class Intercepted:
    """A connection whose TLS kpy ended on both sides."""

    client: TlsStream
    upstream: TlsStream
    info: Doc
    """What the mocks say of it: ``server_name``, ``alpn``."""
    warning: str | None = None


@dataclass(frozen=True)
class Opaque:
    """A connection whose TLS kpy cannot end (the server asks for a client certificate
    kpy does not hold, a certificate the service pins): relayed as it is."""

    server_name: str | None
    reason: str


@dataclass
class Interception:
    """Recording: end the service's TLS, begin kpy's own to the real server. The real
    server is reached first, with the service's SNI and ALPN, so the service is shown what
    that server chose and, if its certificate fails the service's trust, the same defect."""

    trust: ServiceTrust
    termination: Termination = field(default_factory=Termination)
    opaque_names: set[str] = field(default_factory=set)
    _verifying: dict[tuple[str, ...], ssl.SSLContext] = field(default_factory=dict)
    _refused: set[tuple[str, Address]] = field(default_factory=set)
    """(name, destination) whose certificate from kpy the service refused: relayed since."""

    async def intercept(
        self,
        hello_bytes: bytes,
        client: Streams,
        connect: Callable[[], Awaitable[Streams]],
        destination: Address,
    ) -> Intercepted | Opaque:
        """``connect``: a new connection to the real server, ready for TLS."""
        hello = tls.parse_client_hello(hello_bytes)
        name = hello.server_name or plain_ip(destination.host)
        if name in self.opaque_names:
            return Opaque(hello.server_name, f"kpy does not end the TLS of {name}")
        if (name, destination) in self._refused:
            return Opaque(hello.server_name, f"the service refused kpy's certificate for {name}")
        upstream_raw = await connect()
        upstream = TlsStream(
            upstream_raw,
            self._verifying_context(hello.alpn),
            server_side=False,
            server_hostname=name,
        )
        warning, issuer_unknown = None, False
        try:
            await upstream.handshake()
            if asked_for_certificate(upstream):
                upstream.close()
                return Opaque(hello.server_name, _mutual(name, destination))
            leaf = self.termination.leaf(name)
        except ssl.SSLCertVerificationError as e:
            upstream.close()
            upstream, leaf = await self._unverified(connect, hello.alpn, hello.server_name, e)
            issuer_unknown = e.verify_code not in CA_SIGNED_DEFECTS
            warning = (
                f"the certificate of {name} ({destination}) fails the trust the service was "
                f"given ({e.verify_message}): the service was shown the same defect"
            )
        except (ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
            upstream.close()
            if asked_for_certificate(upstream):  # TLS 1.2: refused in the handshake
                return Opaque(hello.server_name, _mutual(name, destination))
            return Opaque(
                hello.server_name,
                f"kpy's TLS handshake with {name} ({destination}) failed: {_why(e)}",
            )
        selected = upstream.ssl_object.selected_alpn_protocol()
        context = self.termination.context(leaf, (selected,) if selected else ())
        try:
            client_side = await self.termination.terminate(client, hello_bytes, context)
        except TlsFailed as e:
            upstream.close()
            if warning is None:  # kpy's own leaf refused: a pinned certificate, or no trust
                self._refused.add((name, destination))
                raise TlsFailed(
                    f"{e} for {name}: the service does not trust kpy's CA there (a pinned "
                    f"certificate, or a CA file kpy did not cover: kpy.yml tls.ca_files); "
                    f"its next connections to {name} are relayed as they are (tls: opaque)"
                ) from None
            if issuer_unknown:  # or known to the service through a CA file kpy is not told of
                self._refused.add((name, destination))
                raise TlsFailed(
                    f"{warning}, and failed as it would have without kpy, unless it trusts "
                    f"{name} through a CA file of its own (name it in kpy.yml tls.ca_files); "
                    f"its next connections to {name} are relayed as they are (tls: opaque), "
                    "for it to judge the real certificate itself"
                ) from None
            raise TlsFailed(f"{warning}, and failed as it would have without kpy") from None
        info: Doc = {"server_name": hello.server_name, "alpn": selected}
        return Intercepted(client_side, upstream, info, warning)

    def __post_init__(self) -> None:
        for alpn in COMMON_ALPN:
            self._verifying_context(alpn)

    def _verifying_context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        if alpn not in self._verifying:
            self._verifying[alpn] = watching(self.trust.verifying_context(alpn))
        return self._verifying[alpn]

    async def _unverified(
        self,
        connect: Callable[[], Awaitable[Streams]],
        alpn: tuple[str, ...],
        server_name: str | None,
        failure: ssl.SSLCertVerificationError,
    ) -> tuple[TlsStream, Leaf]:
        """The real server again, unchecked (a service that does not verify goes on), and
        a leaf with the defect its certificate has."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if alpn:
            context.set_alpn_protocols(list(alpn))
        upstream = TlsStream(await connect(), context, False, server_name)
        await upstream.handshake()
        der = upstream.ssl_object.getpeercert(binary_form=True) or b""
        issuer, with_issuer = _issuer_for(failure.verify_code)
        return upstream, leaf_like(der, issuer, with_issuer)


def _issuer_for(verify_code: int) -> tuple[Issuer, bool]:
    if verify_code in CA_SIGNED_DEFECTS:
        return "kpy", False  # trusted, but with the real certificate's dates and names
    if verify_code == SELF_SIGNED:
        return "self", False
    return "untrusted", verify_code == SELF_SIGNED_IN_CHAIN


def _mutual(name: str, destination: Address) -> str:
    return (
        f"{name} ({destination}) asks for a client certificate (mutual TLS), and kpy holds "
        "none of the service's keys"
    )


def _why(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer in {HANDSHAKE_SECONDS:g}s"
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason).lower().replace("_", " ")
    return str(e) or type(e).__name__
