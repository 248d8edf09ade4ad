"""Redis (RESP2 and RESP3): sniff a connection, pair commands with replies, re-encode
replies. The wire format, and the shapes reply values take, are in resp.py. No I/O.

An exchange's request is ``{"command": [word, ...]}`` (each word a str, or ``{"base64": ...}``
when not UTF-8), with ``"inline": true`` for an inline command (``PING\\r\\n``). Its response
is ``{"reply": value}``, or ``{"replies": [value, ...]}`` for a command answered by other
than one frame; ``encode_response`` gives back the exact bytes.

Pairing. Redis answers in the order commands came, so each reply goes to the oldest command
still unanswered, however deep the pipeline. What the server sends unasked becomes an
exchange of its own whose request is ``{"push": true}``: RESP3 push frames (``>``) other than
the (un)subscribe confirmations a pending command waits for (pub/sub messages, client-side
caching invalidations); in RESP2, pub/sub messages (``message``, ``pmessage``, ``smessage``
arrays while the connection has subscriptions); after MONITOR, the lines it streams; and any
reply when no command is pending (an error before the server closes, say).
Commands answered by other than one frame: SUBSCRIBE a b c (and PSUBSCRIBE, SSUBSCRIBE) get
one confirmation per channel; UNSUBSCRIBE with no channel one per channel it drops (counted
from the confirmations seen) or one if none; after CLIENT REPLY OFF or SKIP, commands the
server will not answer get ``{"replies": []}`` (CLIENT REPLY queued inside MULTI is not
followed). Any error reply ends its command.

Secrets: the password of AUTH, HELLO ... AUTH, MIGRATE ... AUTH/AUTH2, CONFIG SET requirepass
(and the other password settings) and ACL SETUSER's password rules is replaced by
``REDACTED`` before the request is kept; user names are kept. Replies are kept as they came.

At close, commands still unanswered are returned with the replies that did arrive and
``"incomplete": true`` in the response (``{"replies": [...], "incomplete": true}``): a
mock can then answer as the server did, with no more than that. A reply frame cut short by
the close is dropped. Bytes that are no RESP raise ``ProtocolError``, which carries the
exchanges completed before them.

Reusable (served without limit on replay): AUTH, HELLO, SELECT, PING, READONLY, READWRITE,
CLIENT SETNAME, CLIENT SETINFO and COMMAND (set-up, and answers that never change).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kpy_ci.protocols.base import (
    REDACTED,
    Doc,
    Exchange,
    ProtocolError,
    from_text_or_base64,
)
from kpy_ci.protocols.redis.resp import Frame, Reader, encode

NAME = "redis"

REUSABLE = frozenset(
    {"AUTH", "HELLO", "SELECT", "PING", "READONLY", "READWRITE", "COMMAND"}
    | {"CLIENT|SETNAME", "CLIENT|SETINFO"}
)
SUBSCRIBES = frozenset({"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"})
UNSUBSCRIBES = frozenset({"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"})
MESSAGES = frozenset({"MESSAGE", "PMESSAGE", "SMESSAGE"})
SECRET_SETTINGS = frozenset(
    {"requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"}
)
_MONITOR_LINE = re.compile(r"\d+\.\d+ \[")  # +1700000000.123456 [0 127.0.0.1:5000] "get" ...


def words_of(command: list[Any]) -> list[str]:
    """The words of a command upper-cased, for deciding what it is: "" for those that
    cannot be a keyword (not text, or long: a value)."""
    return [w.upper() if isinstance(w, str) and len(w) <= 64 else "" for w in command]


def command_name(words: list[str]) -> str:
    """``GET``, or ``CLIENT|SETNAME`` for a container command, as Redis names them."""
    if len(words) > 1 and words[0] in ("CLIENT", "CONFIG", "ACL", "COMMAND", "OBJECT"):
        return f"{words[0]}|{words[1]}"
    return words[0] if words else ""


def redact(command: list[Any]) -> list[Any]:
    """The command with each password in it replaced by ``REDACTED``."""
    words = words_of(command)
    name, n = command_name(words), len(command)
    secret: set[int] = set()
    if name == "AUTH":  # AUTH password | AUTH user password
        secret = {n - 1} if n in (2, 3) else set(range(1, n))
    elif name == "HELLO":  # HELLO 3 [AUTH user password] [SETNAME name]
        secret = _option_secrets(words, 2, {"AUTH": 2, "SETNAME": -1})
    elif name == "MIGRATE":  # MIGRATE host port key db timeout [AUTH pw | AUTH2 user pw] ...
        secret = _option_secrets(words, 6, {"AUTH": 1, "AUTH2": 2}, stop="KEYS")
    elif name == "CONFIG|SET":  # CONFIG SET name value [name value ...]
        secret = {i + 1 for i in range(2, n, 2) if words[i].lower() in SECRET_SETTINGS}
    elif name == "ACL|SETUSER":  # ACL SETUSER user on >password #sha256 ...
        secret = {i for i in range(3, n) if _first_byte(command[i]) in (b">", b"<", b"#", b"!")}
    return [REDACTED if i in secret else w for i, w in enumerate(command)]


def redact_request(request: Doc) -> Doc:
    """A request with its command's passwords replaced (``redact``)."""
    if "command" not in request:
        return request
    return {**request, "command": redact(list(request["command"]))}


def _option_secrets(
    words: list[str], start: int, options: dict[str, int], stop: str = ""
) -> set[int]:
    """Where the secrets are among options, each of which takes ``abs(options[word])``
    arguments, the last of them a secret when positive."""
    secret, i = set(), start
    while i < len(words) and words[i] != stop:
        taken = options.get(words[i], 0)
        if taken > 0:
            secret.add(i + taken)
        i += 1 + abs(taken)
    return secret


def _first_byte(word: Any) -> bytes:
    try:
        return from_text_or_base64(word)[:1]
    except ValueError:
        return b""


@dataclass(slots=True)
class _Command:
    request: Doc
    words: list[str]
    started: int
    expected: int | None = None  # frames that answer it; None: count them at the first
    frames: list[Frame] = field(default_factory=list)

    @property
    def name(self) -> str:
        return command_name(self.words)


@dataclass(slots=True)
class _Side:
    """One direction's reader, and when the frame it is in the middle of began."""

    reader: Reader
    start: int = 0

    def feed(self, data: bytes, at: int) -> Iterator[tuple[Frame, int]]:
        """Each frame these bytes complete, with when it began."""
        if not self.reader.buffered:
            self.start = at
        self.reader.receive(data)
        while (frame := self.reader.next_frame()) is not None:
            yield frame, self.start
            self.start = at  # the next frame begins in this chunk


class RedisRecorder:
    """Pairs one connection's commands with their replies (see the module docstring)."""

    def __init__(self) -> None:
        self._client = _Side(Reader(client=True))
        self._server = _Side(Reader())
        self._queue: deque[_Command] = deque()
        self._channels: dict[str, set[str]] = {"": set(), "P": set(), "S": set()}
        self._monitoring = False
        self._resp3 = False  # after HELLO 3: pub/sub messages come as pushes
        self._replies = "ON"  # CLIENT REPLY: ON, OFF, or SKIP (the next command)

    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        try:
            for frame, started in self._client.feed(data, at):
                self._command(frame, started)
        except ProtocolError as e:
            raise ProtocolError(str(e), self._unanswered(at)) from e
        return self._unanswered(at)

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        done: list[Exchange] = []
        try:
            for frame, started in self._server.feed(data, at):
                done += self._reply(frame, started, at)
        except ProtocolError as e:
            raise ProtocolError(str(e), done) from e  # keep those complete before the fault
        return done

    def close(self, at: int) -> list[Exchange]:
        done = self._unanswered(at)
        while self._queue:
            done.append(self._exchange(self._queue.popleft(), at, incomplete=True))
        return done

    def _command(self, frame: Frame, started: int) -> None:
        command = frame.value
        if not isinstance(command, list) or not command:
            return  # "*0\r\n" and "*-1\r\n": redis-server ignores them
        request: Doc = {"command": redact(command)}
        if frame.inline:
            request["inline"] = True
        words = words_of(command)
        self._queue.append(_Command(request, words, started, self._silenced(words)))

    def _silenced(self, words: list[str]) -> int | None:
        """0 when the server will not answer this command (CLIENT REPLY), else None."""
        switch = words[2] if command_name(words) == "CLIENT|REPLY" and len(words) == 3 else ""
        if switch == "ON":
            self._replies = "ON"
            return None
        silent = self._replies != "ON"
        if self._replies == "SKIP":
            self._replies = "ON"
        if switch == "OFF" or (switch == "SKIP" and self._replies == "ON"):
            self._replies = switch
        return 0 if silent or switch in ("OFF", "SKIP") else None

    def _reply(self, frame: Frame, started: int, ended: int) -> list[Exchange]:
        head = self._queue[0] if self._queue else None
        if head is not None and head.expected is None:
            head.expected = self._expected(head)
        value = frame.value
        push = value["push"] if isinstance(value, dict) and list(value) == ["push"] else None
        items = push if push is not None else value if isinstance(value, list) else []
        kind = items[0].upper() if items and isinstance(items[0], str) else ""
        confirms = head is not None and kind == head.name and kind in SUBSCRIBES | UNSUBSCRIBES
        if push is not None or confirms:
            self._track(kind, items)
        if head is None or (not confirms and self._unasked(value, push is not None, kind)):
            return [self._server_only(frame, started, ended)]
        head.frames.append(frame)
        if len(head.frames) < (head.expected or 1) and not _is_error(value):
            return []
        self._queue.popleft()
        self._after(head, value)
        return [self._exchange(head, ended), *self._unanswered(ended)]

    def _unasked(self, value: Any, push: bool, kind: str) -> bool:
        """Whether the server sent this reply of its own accord (the module docstring)."""
        if push:
            return True
        if self._monitoring and isinstance(value, dict) and isinstance(value.get("simple"), str):
            return _MONITOR_LINE.match(value["simple"]) is not None
        return kind in MESSAGES and not self._resp3 and any(self._channels.values())

    def _expected(self, command: _Command) -> int:
        """How many frames answer this command, counted when the first arrives (the
        subscriptions are then as the server had them when it answered)."""
        name, channels = command.name, len(command.words) - 1
        if name in SUBSCRIBES:
            return max(channels, 1)
        if name in UNSUBSCRIBES:
            return channels or max(len(self._channels[name.removesuffix("UNSUBSCRIBE")]), 1)
        return 1

    def _track(self, kind: str, items: list[Any]) -> None:
        """Follow the subscriptions the confirmations report."""
        if len(items) < 2 or kind not in SUBSCRIBES | UNSUBSCRIBES:
            return
        channel = items[1] if isinstance(items[1], str) else repr(items[1])
        if kind in SUBSCRIBES:
            self._channels[kind.removesuffix("SUBSCRIBE")].add(channel)
        else:
            self._channels[kind.removesuffix("UNSUBSCRIBE")].discard(channel)

    def _after(self, command: _Command, last: Any) -> None:
        """Modes a command's success turns on or off."""
        if command.name == "MONITOR" and last == {"simple": "OK"}:
            self._monitoring = True
        elif command.name == "HELLO" and not _is_error(last):
            self._resp3 = isinstance(last, dict) and "map" in last
        elif command.name == "RESET" and last == {"simple": "RESET"}:
            self._monitoring, self._replies, self._resp3 = False, "ON", False
            for channels in self._channels.values():
                channels.clear()

    def _unanswered(self, at: int) -> list[Exchange]:
        """Commands at the head of the queue the server will not answer."""
        done = []
        while self._queue and self._queue[0].expected == 0:
            command = self._queue.popleft()
            done.append(self._exchange(command, max(command.started, at)))
        return done

    def _exchange(self, command: _Command, ended: int, incomplete: bool = False) -> Exchange:
        values = [f.value for f in command.frames]
        response: Doc = (
            {"reply": values[0]} if len(values) == 1 and not incomplete else {"replies": values}
        )
        if incomplete:
            response["incomplete"] = True
        reusable = command.name in REUSABLE or command.words[0] in REUSABLE
        raw = b"".join(f.raw for f in command.frames)
        return Exchange(NAME, command.request, response, command.started, ended, reusable, raw)

    @staticmethod
    def _server_only(frame: Frame, started: int, ended: int) -> Exchange:
        response = {"reply": frame.value}
        return Exchange(NAME, {"push": True}, response, started, ended, raw_response=frame.raw)


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and ("error" in value or "blob_error" in value)


def encode_response(response: Doc) -> bytes:
    """The bytes the server sent, from an exchange's response (its ``raw`` when the
    recording kept those bytes whole)."""
    if "raw" in response:
        return from_text_or_base64(response["raw"])
    if "reply" in response:
        return encode(response["reply"])
    if isinstance(response.get("replies"), list):
        return b"".join(encode(value) for value in response["replies"])
    raise ValueError(f"a Redis response has reply or replies: {response!r}")


# `*<n>\r\n$<len>\r\n...`, or as much of its beginning as has arrived
_RESP_HEAD = re.compile(rb"\*[1-9]\d{0,9}\r\n\$\d{1,10}\r\n")
_RESP_START = re.compile(rb"\*(?:[1-9]\d{0,9}(?:\r(?:\n(?:\$(?:\d{1,10}\r?)?)?)?)?)?")
_INLINE_WORD = re.compile(rb"([A-Za-z]+)[ \r\n]")
_HTTP_VERSION = re.compile(rb" HTTP/\d(?:\.\d)?\r?\Z")
_HTTP_METHODS = frozenset({b"GET", b"COPY", b"MOVE"})  # HTTP and WebDAV words Redis has too
COMMANDS = frozenset(
    b"""
    ACL APPEND ASKING AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITOP BITPOS BLMOVE BLMPOP
    BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND CONFIG COPY DBSIZE
    DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVALSHA EXEC EXISTS EXPIRE EXPIREAT FCALL FLUSHALL
    FLUSHDB FUNCTION GEOADD GEODIST GEOPOS GEOSEARCH GET GETBIT GETDEL GETEX GETRANGE GETSET
    HDEL HELLO HEXISTS HGET HGETALL HINCRBY HKEYS HLEN HMGET HMSET HSCAN HSET HSETNX HVALS INCR
    INCRBY INCRBYFLOAT INFO KEYS LASTSAVE LATENCY LINDEX LINSERT LLEN LMOVE LPOP LPOS LPUSH
    LRANGE LREM LSET LTRIM MEMORY MGET MIGRATE MONITOR MOVE MSET MSETNX MULTI OBJECT PERSIST
    PEXPIRE PFADD PFCOUNT PFMERGE PING PSETEX PSUBSCRIBE PTTL PUBLISH PUBSUB PUNSUBSCRIBE QUIT
    RANDOMKEY READONLY READWRITE RENAME RENAMENX REPLICAOF RESET RESTORE ROLE RPOP RPOPLPUSH
    RPUSH SADD SAVE SCAN SCARD SCRIPT SDIFF SELECT SET SETEX SETNX SETRANGE SHUTDOWN SINTER
    SISMEMBER SLAVEOF SLOWLOG SMEMBERS SMOVE SORT SPOP SPUBLISH SRANDMEMBER SREM SSCAN
    SSUBSCRIBE STRLEN SUBSCRIBE SUNION SUNSUBSCRIBE SWAPDB TIME TOUCH TTL TYPE UNLINK
    UNSUBSCRIBE UNWATCH WAIT WATCH XACK XADD XDEL XGROUP XINFO XLEN XRANGE XREAD XREADGROUP
    XREVRANGE XTRIM ZADD ZCARD ZCOUNT ZINCRBY ZMSCORE ZPOPMAX ZPOPMIN ZRANGE ZRANGEBYSCORE
    ZRANK ZREM ZREVRANGE ZREVRANK ZSCAN ZSCORE ZUNIONSTORE
    """.split()
)


def sniff(first: bytes) -> bool:
    """A RESP array (what every client library sends), or an inline command: a Redis
    command word, then a blank or the line's end, on a line that is no HTTP request."""
    if first.startswith(b"*"):
        return bool(_RESP_HEAD.match(first) or _RESP_START.fullmatch(first))
    word = _INLINE_WORD.match(first)
    if word is None or word[1].upper() not in COMMANDS:
        return False
    line, newline, _ = first.partition(b"\n")
    if word[1] in _HTTP_METHODS and (not newline or line[word.end() :].startswith(b"/")):
        return False  # may yet turn out to be an HTTP request line
    return not _HTTP_VERSION.search(line)
