"""The one shape every protocol has. No I/O here or in any protocol package: they take
bytes and return exchanges (sans-I/O, as h11 does).

A protocol is one package under ``protocols/`` whose ``__init__`` exports
``PROTOCOL = Protocol(...)``, complete: every field below is required, so a plug-in that
lacks a part fails at import. ``registry.py`` lists them, and is the only list: the mock
schema's protocol enum, ``kpy doctor`` and the docs' table come from it. Adding one is its
package, one registry line, its tests and its docs.

Data shapes kept in exchanges are YAML-ready: dict, list, str, int, float, bool, None. Bytes
that are not UTF-8 text are ``{"base64": "..."}`` (see ``text_or_base64``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from typing import Protocol as TypingProtocol

Doc = dict[str, Any]
"""A decoded message or exchange side: plain YAML-ready data."""


class ProtocolError(Exception):
    """The bytes are not this protocol (or are corrupt): the recording goes on with the
    connection as generic TCP from there, and says so. ``exchanges`` are those completed
    before the fault and not returned yet: they are kept."""

    def __init__(self, message: str, exchanges: list[Exchange] | None = None) -> None:
        super().__init__(message)
        self.exchanges = exchanges or []


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the reply it got, on one connection, decoded for people.

    ``response`` re-encodes, through the protocol's ``encode_response``, to exactly the bytes
    the server sent (``raw_response``), for the protocols that promise it (PostgreSQL,
    Redis, generic); it is kept in memory only, to check that at record time. HTTP leaves
    it empty: bodies are stored decoded and re-encoded equal in meaning, not in bytes.
    ``started``/``ended`` are ``time.monotonic_ns()`` values the proxy passed with the first
    request byte and the last response byte; they attribute mocks to the running test.
    """

    protocol: str
    request: Doc
    response: Doc
    started: int
    ended: int
    reusable: bool = False  # connection set-up, idempotent reads: served without limit
    raw_response: bytes = field(default=b"", repr=False, compare=False)
    credentials: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """What redaction took from the request's Authorization headers, in their order; in
    memory only, for ``redact.keep_issued``."""


class Recorder(TypingProtocol):
    """Fed both directions of one connection, in the order they arrived, in chunks of any
    size; gives back the exchanges that are complete. ``at`` is ``time.monotonic_ns()``."""

    def client_data(self, data: bytes, at: int) -> list[Exchange]: ...

    def server_data(self, data: bytes, at: int) -> list[Exchange]: ...

    def close(self, at: int) -> list[Exchange]:
        """The connection ended: the exchanges still complete enough to keep."""
        ...


class MockSource(TypingProtocol):
    """What a mock server asks of the replay, for one connection (the replay owns it)."""

    def serve(self, request: Doc, *, optional: bool = False) -> Doc | None:
        """The recorded mock (the whole document) that answers ``request``, shaped as a
        recorded request of this protocol; None on a miss, which the replay notes as a
        failure unless the request was ``optional`` (a greeting nobody may have sent: only a
        mock recorded for this connection's destination answers it). The document may be
        shared: read it, never change it."""
        ...

    def next_on_connection(self, mock: Doc) -> Doc | None:
        """The mock recorded right after ``mock`` on its connection if the server sent it
        unasked (a pub/sub message): it follows the answer to ``mock``."""
        ...

    def miss(self, request: Doc) -> None:
        """Note a call no mock answers, found by the mock server itself (a unit that began
        like a mock and went on otherwise)."""
        ...


class MockServer(TypingProtocol):
    """Plays the server of one connection from mocks: fed the client's bytes in chunks of
    any size, gives back the bytes to answer. Sans-I/O, like a recorder."""

    closed: bool
    """The server hangs up once what it returned is sent."""

    def opening(self) -> bytes:
        """The client said nothing first: what a server-first protocol sends (a greeting)."""
        ...

    def client_data(self, data: bytes) -> bytes: ...

    def idle(self) -> bytes:
        """The client paused: answer what it sent so far, for a protocol whose requests
        have no framing of their own (generic TCP); the others answer nothing."""
        ...


@dataclass(frozen=True)
class Matcher:
    """How replay finds a protocol's mocks: requests with the same ``key`` answer each
    other (the key leaves out what changes from run to run: statement names, DNS ids)."""

    key: Callable[[Doc], Hashable]
    describe: Callable[[Doc], str]
    """A recorded request, one line, for people (misses, unused mocks, reports)."""
    expected: Callable[[Doc], bool]
    """Whether the call is a write, which must be made again (INSERT, SET, POST...): a
    write the service no longer makes fails its test; an unused read is only listed."""
    setup: Callable[[Doc], bool]
    """Whether the call sets a connection up, or reads what does not change (SHOW, a
    driver's CLIENT SETINFO): reusable however the recording marked it, since a replay may
    open more connections than were recorded."""
    partials: Callable[[Doc], list[Hashable]]
    """Keys of the request cut where the client waited for answers before it was whole
    (PostgreSQL's Flush in a pipeline): a mock server asks with such a cut request first."""
    readable: Callable[[Doc], Doc]
    """The request with binary values that may be generated (a UUID, a time) given as text,
    so that generated.py can find them."""


@dataclass(frozen=True)
class Protocol:
    """A protocol plug-in: every part is given, none has a default."""

    name: str
    sniff: Callable[[bytes], bool]
    """Whether a connection whose client sent these first bytes speaks this protocol. It
    may be given as little as one byte; answer from what is there."""
    greets: Callable[[bytes, int], bool]
    """For a server-first protocol: whether the server's first bytes, sent before the client
    said anything, are this protocol's greeting. The destination port is a hint, never the
    only rule. Client-first protocols say no (``client_first``)."""
    edit_greeting: Callable[[bytes], bytes | None]
    """The greeting kpy relays in place of the server's (MySQL clears the capabilities kpy
    cannot follow: TLS, compression); None while more bytes are needed to have it whole.
    The recording holds what the client was sent."""
    answer_locally: Callable[[bytes], tuple[int, bytes] | None]
    """For an opening request kpy answers itself instead of the server (PostgreSQL's
    GSSENCRequest: 'N', so the session goes on without GSSAPI): (bytes used, answer)."""
    starttls: Callable[[bytes], tuple[int, bytes] | None]
    """For an opening request that asks the server to begin TLS (PostgreSQL's SSLRequest):
    (its size, the answer that says yes). Recording asks the real server and, on yes, kpy
    ends TLS on both sides; replay says yes when the recording's connection was TLS."""
    recorder: Callable[[], Recorder]
    encode_response: Callable[[Doc], bytes]
    """The bytes the server sent, from an exchange's ``response``."""
    byte_exact: bool
    """Whether ``encode_response`` gives back exactly the bytes the server sent (the
    recorder then sets ``Exchange.raw_response``, and recording checks it); HTTP and DNS
    promise the meaning, not the bytes."""
    matcher: Matcher
    mock_server: Callable[[MockSource], MockServer]
    """Replay: a server for one connection that answers from mocks. A server-first one
    speaks first (``MockServer.opening``), at once."""
    schema: Doc
    """The JSON Schema of a mock's ``request`` and ``response`` (``$defs``), composed into
    the mock schema by schema/documents.py."""
    redact: Callable[[Doc], Doc]
    """A request as kpy may write it: every secret the protocol carries replaced by
    ``REDACTED``. Recorders return requests already redacted; mock servers redact what
    they are asked the same way, so that the two match."""


def client_first(data: bytes, port: int) -> bool:
    """``Protocol.greets`` of a protocol whose client speaks first."""
    return False


def unchanged(data: bytes) -> bytes:
    """``Protocol.edit_greeting`` of a protocol that relays its greeting as it is."""
    return data


def nothing_local(first: bytes) -> None:
    """``Protocol.answer_locally`` and ``starttls`` of a protocol without such requests."""
    return None


def no_partials(request: Doc) -> list[Hashable]:
    """``Matcher.partials`` of a protocol whose client never waits inside a request."""
    return []


def as_recorded(request: Doc) -> Doc:
    """``Matcher.readable`` of a protocol whose requests are text already, and
    ``Protocol.redact`` of one whose recorder never decodes its secrets."""
    return request


def no_setup(request: Doc) -> bool:
    """``Matcher.setup`` of a protocol with no connection set-up."""
    return False


def load_schema(package: str) -> Doc:
    """A protocol package's ``schema.json``."""
    doc: Doc = json.loads(resources.files(package).joinpath("schema.json").read_text("utf-8"))
    return doc


def text_or_base64(data: bytes) -> str | Doc:
    """Bytes as a str when they are UTF-8 text, else ``{"base64": ...}``: readable in a
    diff, and lossless either way (``from_text_or_base64`` gives the same bytes back)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
    return text


def from_text_or_base64(value: str | Mapping[str, Any]) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return base64.b64decode(value["base64"], validate=True)
    except (KeyError, TypeError, binascii.Error) as e:
        raise ValueError(f"expected a string or {{base64: ...}}, got {value!r}") from e


REDACTED = "[redacted by kpy]"
"""What stands where a secret was. Replay never needs the secret itself."""
