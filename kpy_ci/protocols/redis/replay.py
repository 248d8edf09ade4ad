"""Redis at replay: how a command finds its mock (``MATCHER``) and a server that answers a
client from mocks (``RedisMockServer``). Sans-I/O.

A command matches a mock with the same words (the command's name in any case; passwords
redacted on both sides, as the recording wrote them). What the server sent unasked right
after a mock on its connection (pub/sub messages, pushes) follows its reply. A command no
mock matches gets ``-ERR kpy: no recorded mock matches ...``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from kpy_ci.protocols.base import Doc, Matcher, MockSource, as_recorded, no_partials
from kpy_ci.protocols.redis.recorder import (
    REUSABLE,
    command_name,
    encode_response,
    redact,
    words_of,
)
from kpy_ci.protocols.redis.resp import Reader

# Commands that change nothing a later call could see (Redis's "readonly" and connection
# commands): a recorded one the service no longer sends is listed, not failed. Any other
# command is taken for a write, so a dropped write never passes unnoticed.
READS = frozenset(
    {"GET", "MGET", "GETRANGE", "STRLEN", "EXISTS", "TYPE", "TTL", "PTTL", "EXPIRETIME"}
    | {"PEXPIRETIME", "KEYS", "SCAN", "RANDOMKEY", "DBSIZE", "HGET", "HMGET", "HGETALL"}
    | {"HKEYS", "HVALS", "HLEN", "HEXISTS", "HSTRLEN", "HSCAN", "HRANDFIELD", "LRANGE"}
    | {"LINDEX", "LLEN", "LPOS", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SSCAN"}
    | {"SRANDMEMBER", "SINTER", "SUNION", "SDIFF", "SINTERCARD", "ZRANGE", "ZRANGEBYSCORE"}
    | {"ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZSCORE", "ZMSCORE"}
    | {"ZRANK", "ZREVRANK", "ZCARD", "ZCOUNT", "ZLEXCOUNT", "ZSCAN", "ZRANDMEMBER", "ZINTER"}
    | {"ZUNION", "ZDIFF", "ZINTERCARD", "GETBIT", "BITCOUNT", "BITPOS", "PFCOUNT", "GEOPOS"}
    | {"GEODIST", "GEOHASH", "GEOSEARCH", "GEORADIUS_RO", "GEORADIUSBYMEMBER_RO", "XRANGE"}
    | {"XREVRANGE", "XLEN", "XREAD", "XINFO", "XPENDING", "OBJECT", "MEMORY", "DUMP"}
    | {"LCS", "SUBSTR", "TIME", "INFO", "ECHO", "PING", "AUTH", "HELLO", "SELECT", "CLIENT"}
    | {"COMMAND", "READONLY", "READWRITE", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"}
    | {"QUIT", "RESET", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE"}
    | {"PUNSUBSCRIBE", "SUNSUBSCRIBE", "LASTSAVE", "ROLE", "CONFIG|GET", "WAIT"}
)


def _words(request: Doc) -> list[Any]:
    command = list(request.get("command", ()))
    if command and isinstance(command[0], str):
        command[0] = command[0].upper()
    return command


def match_key(request: Doc) -> Hashable:
    if request.get("push"):
        return ("push",)  # sent unasked: follows the mock before it, never asked for
    return tuple(w if isinstance(w, str) else repr(w) for w in _words(request))


def describe(request: Doc) -> str:
    if request.get("push"):
        return "(sent by the server unasked)"
    return " ".join(w if isinstance(w, str) else "<binary>" for w in _words(request))


def expected(request: Doc) -> bool:
    if request.get("push"):
        return False
    words = words_of(list(request.get("command", ())))
    return bool(words) and command_name(words) not in READS and words[0] not in READS


# what clients send on every new connection, besides what the recording marks reusable
SETUP = REUSABLE | {"CLIENT|MAINT_NOTIFICATIONS", "CLIENT|TRACKING", "CLIENT|NO-EVICT"}
SETUP |= {"CLIENT|NO-TOUCH", "CLIENT|ID", "CLIENT|GETNAME", "CLIENT|INFO"}


def setup(request: Doc) -> bool:
    words = words_of(list(request.get("command", ())))
    return bool(words) and (command_name(words) in SETUP or words[0] in SETUP)


MATCHER = Matcher(match_key, describe, expected, setup, no_partials, as_recorded)


class RedisMockServer:
    def __init__(self, source: MockSource) -> None:
        self.source = source
        self.closed = False
        self._reader = Reader(client=True)

    def opening(self) -> bytes:
        return b""

    def idle(self) -> bytes:
        return b""

    def client_data(self, data: bytes) -> bytes:
        out = bytearray()
        for frame in self._reader.feed(data):
            command = frame.value
            if self.closed or not isinstance(command, list) or not command:
                continue
            out += self._answer({"command": redact(command)})
        return bytes(out)

    def _answer(self, request: Doc) -> bytes:
        words = words_of(request["command"])
        mock = self.source.serve(request)
        if mock is None:
            text = f"ERR kpy: no recorded mock matches {describe(request)}"
            return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"
        out = bytearray(encode_response(mock["response"]))
        while (after := self.source.next_on_connection(mock)) is not None and after["request"].get(
            "push"
        ):
            out += encode_response(after["response"])
            mock = after
        if words[:1] == ["QUIT"]:
            self.closed = True
        return bytes(out)
