"""Any TCP protocol kpy does not know: ordered client/server chunks.

An exchange is what the client sent, up to the server's first answer, and everything the
server sent back before the client spoke again. Server-first protocols (a greeting before
the client says anything) give a first exchange with an empty request.
"""

from __future__ import annotations

from collections.abc import Hashable

from kpy_ci.protocols.base import (
    Doc,
    Exchange,
    Matcher,
    MockSource,
    Protocol,
    as_recorded,
    from_text_or_base64,
    load_schema,
    no_partials,
    no_setup,
    nothing_local,
    text_or_base64,
    unchanged,
)

NAME = "generic"


def sniff(first: bytes) -> bool:
    return True


def greets(data: bytes, port: int) -> bool:
    return True  # any greeting no other protocol claims


class GenericRecorder:
    def __init__(self) -> None:
        self._request = bytearray()
        self._response = bytearray()
        self._started = 0
        self._ended = 0

    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        done = self._flush() if self._response else []
        if not self._request:
            self._started = at
        self._request += data
        return done

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        if not self._request and not self._response:
            self._started = at
        self._response += data
        self._ended = at
        return []

    def close(self, at: int) -> list[Exchange]:
        return self._flush() if self._request or self._response else []

    def _flush(self) -> list[Exchange]:
        raw = bytes(self._response)
        exchange = Exchange(
            NAME,
            request={"data": text_or_base64(bytes(self._request))},
            response={"data": text_or_base64(raw)},
            started=self._started,
            ended=self._ended,
            raw_response=raw,
        )
        self._request.clear()
        self._response.clear()
        return [exchange]


def encode_response(response: Doc) -> bytes:
    return from_text_or_base64(response["data"])


# --- replay: the same bytes, in the same cuts -------------------------------------------------


def match_key(request: Doc) -> Hashable:
    data = request.get("data", "")
    return data if isinstance(data, str) else repr(data)


def describe(request: Doc) -> str:
    data = from_text_or_base64(request.get("data", ""))
    return repr(data[:120]) + ("..." if len(data) > 120 else "") if data else "(server greeting)"


def expected(request: Doc) -> bool:
    return True  # nothing says what unknown bytes do: a call not made is never passed over


class GenericMockServer:
    """Answers what the client sent once it pauses, if a mock holds exactly those bytes;
    on a miss it hangs up (no protocol here has an error to send)."""

    def __init__(self, source: MockSource) -> None:
        self.source = source
        self.closed = False
        self._pending = bytearray()

    def opening(self) -> bytes:
        mock = self.source.serve({"data": ""}, optional=True)
        return encode_response(mock["response"]) if mock is not None else b""

    def client_data(self, data: bytes) -> bytes:
        self._pending += data
        return b""

    def idle(self) -> bytes:
        if not self._pending:
            return b""
        request = {"data": text_or_base64(bytes(self._pending))}
        self._pending.clear()
        mock = self.source.serve(request)
        if mock is None:
            self.closed = True
            return b""
        return encode_response(mock["response"])


MATCHER = Matcher(match_key, describe, expected, no_setup, no_partials, as_recorded)
PROTOCOL = Protocol(
    name=NAME,
    sniff=sniff,
    greets=greets,
    edit_greeting=unchanged,
    answer_locally=nothing_local,
    starttls=nothing_local,
    recorder=GenericRecorder,
    encode_response=encode_response,
    byte_exact=True,
    matcher=MATCHER,
    mock_server=GenericMockServer,
    schema=load_schema(__name__),
    redact=as_recorded,  # kpy cannot know where unknown bytes hold a secret
)
