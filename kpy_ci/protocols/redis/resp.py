"""RESP, Redis's wire format (RESP2 and RESP3), as YAML-ready values: an incremental reader
fed chunks split anywhere, and the encoder that gives the same bytes back. No I/O.

A reply value is one of (``t`` is a str, or ``{"base64": ...}`` when not UTF-8)::

    +OK              {"simple": t}           -ERR x           {"error": t}
    :5               5                       $3 foo           t  (str or {"base64": ...})
    $-1              {"null": "bulk"}        *-1              {"null": "array"}
    *2 ...           [v, v]                  _                {"null": "resp3"}
    ,3.14            {"double": "3.14"}      #t               {"bool": true}
    (123             {"big": "123"}          !5 ERR x         {"blob_error": t}
    =8 txt:hi        {"verbatim": "txt", "text": t}
    %1 k v           {"map": [[k, v]]}       ~1 v             {"set": [v]}
    >2 v v           {"push": [v, v]}
    |1 k v <value>   {"attributes": [[k, v]], "value": <value>}

The text of simple strings, errors, doubles and big numbers is kept as sent, so every value
re-encodes to the very bytes read. A frame that would not (a non-Redis peer writing ``:007``,
say) is kept whole as ``{"raw": t}``. RESP3's streamed strings and aggregates (``$?``,
``*?``), which Redis itself never sends, are not supported: they raise ``ProtocolError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpy_ci.protocols.base import ProtocolError, from_text_or_base64, text_or_base64

CRLF = b"\r\n"
INLINE_MAX = 64 * 1024  # Redis refuses longer inline commands ("too big inline request")
NULLS = {"bulk": b"$-1\r\n", "array": b"*-1\r\n", "resp3": b"_\r\n"}
_BLOBS = frozenset(b"$!=")  # a length line, then that many bytes and CRLF
_AGGREGATES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}
_LINES = {ord("+"): "simple", ord("-"): "error", ord(","): "double", ord("("): "big"}
_PAIRED = frozenset(b"%|")
_AGGREGATE_TAGS = {ord("~"): "set", ord(">"): "push", ord("%"): "map"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One whole top-level message: its value and the bytes it came in."""

    value: Any
    raw: bytes
    inline: bool = False  # a client's inline command: ``PING\r\n`` rather than an array


@dataclass(slots=True)
class _Aggregate:
    kind: int  # the type byte
    remaining: int  # elements still to read (two per map or attribute entry)
    items: list[Any] = field(default_factory=list)
    attributes: _Attributes | None = None  # waiting for the next element at this level


@dataclass(frozen=True, slots=True)
class _Attributes:
    """A finished ``|``: no element itself, it goes with the next value at its level."""

    pairs: list[Any]


class Reader:
    """Bytes in (``receive``), whole frames out (``next_frame``, None until one is whole),
    as h11 does; ``feed`` does both. ``client=True`` for what clients send: a line that
    does not start with ``*`` is an inline command, split into words as redis-server does
    (values are then lists of words, and not re-encoded: requests never are)."""

    def __init__(self, *, client: bool = False) -> None:
        self._client = client
        self._buf = bytearray()
        self._pos = 0  # how far parsing got; the current frame starts at 0
        self._searched = 0  # no line end before here: each byte is searched once
        self._stack: list[_Aggregate] = []
        self._blob: tuple[int, int] | None = None  # type byte and length, header consumed
        self._attributes: _Attributes | None = None  # for the next top-level value

    @property
    def buffered(self) -> int:
        """Bytes of a frame begun but not finished."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self.receive(data)
        frames: list[Frame] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def receive(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None when more bytes are needed; ProtocolError when
        the bytes are no RESP."""
        while True:
            at_start = self._pos == 0 and self._blob is None and not self._stack
            if self._client and at_start and self._buf and self._buf[0] != ord("*"):
                frame = self._inline_command()
                if frame is None or frame.value:
                    return frame
                continue  # an empty line, or unbalanced quotes: no command
            if self._blob is not None:
                kind, length = self._blob
                end = self._pos + length
                if len(self._buf) < end + 2:
                    return None
                if self._buf[end : end + 2] != CRLF:
                    raise ProtocolError(f"RESP {chr(kind)}{length}: no CRLF after the data")
                body = bytes(self._buf[self._pos : end])
                self._pos, self._blob = end + 2, None
                value = _blob_value(kind, body)
            else:
                eol = self._find(CRLF)
                if eol < 0:
                    return None
                kind, text = self._buf[self._pos], bytes(self._buf[self._pos + 1 : eol])
                self._pos = eol + 2
                value = self._header(kind, text)
                if value is None:
                    continue
            frame = self._deliver(value)
            if frame is not None:
                return frame

    def _header(self, kind: int, text: bytes) -> Any:
        """The value a line stands for, or None when its data or elements follow."""
        if kind in _LINES:
            return {_LINES[kind]: text_or_base64(text)}
        if kind == ord(":"):
            return _integer(text)
        if kind == ord("_") and not text:
            return {"null": "resp3"}
        if kind == ord("#") and text in (b"t", b"f"):
            return {"bool": text == b"t"}
        if kind in _BLOBS or kind in _AGGREGATES:
            n = _integer(text)
            if n == -1 and kind in (ord("$"), ord("*")):
                return {"null": "bulk" if kind == ord("$") else "array"}
            if n < 0:
                raise ProtocolError(f"RESP {chr(kind)}{n}: negative length")
            if kind in _BLOBS:
                self._blob = (kind, n)
                return None
            self._stack.append(_Aggregate(kind, n * _AGGREGATES[kind]))
            return None if n else self._pop()
        raise ProtocolError(f"not RESP: line {bytes([kind]) + text!r}")

    def _pop(self) -> Any:
        """The innermost aggregate, finished."""
        top = self._stack.pop()
        items = top.items
        if top.kind in _PAIRED:
            items = [[items[i], items[i + 1]] for i in range(0, len(items), 2)]
        if top.kind == ord("|"):
            return _Attributes(items)
        tag = _AGGREGATE_TAGS.get(top.kind)
        return {tag: items} if tag else items

    def _deliver(self, value: Any) -> Frame | None:
        """Add a finished value to the aggregate it belongs to, closing those it fills; the
        frame when the outermost one is done."""
        while True:
            level = self._stack[-1] if self._stack else None
            pending = level.attributes if level else self._attributes
            if isinstance(value, _Attributes) or pending is not None:
                if level:
                    level.attributes = value if isinstance(value, _Attributes) else None
                else:
                    self._attributes = value if isinstance(value, _Attributes) else None
                if isinstance(value, _Attributes):
                    return None  # it goes with the next value at this level
                assert pending is not None
                value = {"attributes": pending.pairs, "value": value}
            if level is None:
                return self._frame(value)
            level.items.append(value)
            level.remaining -= 1
            if level.remaining:
                return None
            value = self._pop()

    def _find(self, end: bytes) -> int:
        """Where the line from ``_pos`` ends, or -1 until it has."""
        found = self._buf.find(end, max(self._pos, self._searched))
        if found < 0:
            self._searched = len(self._buf) - 1  # the CR of a CRLF may be the last byte
        return found

    def _frame(self, value: Any, inline: bool = False) -> Frame:
        raw = bytes(self._buf[: self._pos])
        del self._buf[: self._pos]
        self._pos = self._searched = 0
        if not self._client and encode(value) != raw:
            value = {"raw": text_or_base64(raw)}
        return Frame(value, raw, inline)

    def _inline_command(self) -> Frame | None:
        eol = self._find(b"\n")
        if eol < 0:
            if len(self._buf) > INLINE_MAX:
                raise ProtocolError("Redis inline command longer than 64 KiB")
            return None
        self._pos = eol + 1
        line = bytes(self._buf[:eol])
        words = split_inline(line[:-1] if line.endswith(b"\r") else line) or []
        return self._frame([text_or_base64(w) for w in words], inline=True)


def _integer(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise ProtocolError(f"RESP: not an integer: {text!r}") from None


def _blob_value(kind: int, body: bytes) -> Any:
    if kind == ord("$"):
        return text_or_base64(body)
    if kind == ord("!"):
        return {"blob_error": text_or_base64(body)}
    if body[3:4] != b":":
        raise ProtocolError(f"RESP3 verbatim string without its format: {body[:16]!r}")
    return {"verbatim": body[:3].decode("latin-1"), "text": text_or_base64(body[4:])}


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_BLANKS = frozenset(b" \t\n\r\v\f")
_SEPARATORS = frozenset(b" \t\n\r\0")


def split_inline(line: bytes) -> list[bytes] | None:
    """An inline command's words, split as redis-server does (``sdssplitargs``): blanks
    between words, "double quotes" with \\n and \\xHH escapes, 'single quotes' with \\'.
    None when quotes are unbalanced."""
    words: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _BLANKS:
            i += 1
        if i == n:
            return words
        word = bytearray()
        while i < n and line[i] not in _SEPARATORS:
            if line[i] in b"'\"":
                i = _quoted(line, i, word)
                if i < 0:
                    return None
                break
            word.append(line[i])
            i += 1
        words.append(bytes(word))


def _quoted(line: bytes, i: int, word: bytearray) -> int:
    """Append the quoted part starting at ``line[i]`` to ``word``; where the word ends, or
    -1 when the quote is not closed, or closed with no blank after it."""
    quote, n = line[i], len(line)
    i += 1
    while i < n:
        c, nxt = line[i], line[i + 1] if i + 1 < n else -1
        if c == quote:
            return i + 1 if nxt < 0 or nxt in _BLANKS else -1
        if c == ord("\\") and quote == ord("'") and nxt == quote:
            word.append(quote)
            i += 2
        elif c == ord("\\") and quote == ord('"') and nxt >= 0:
            hex_digits = line[i + 2 : i + 4]
            if nxt == ord("x") and len(hex_digits) == 2 and set(hex_digits) <= _HEX:
                word.append(int(hex_digits, 16))
                i += 4
            else:
                word.append(_ESCAPES.get(nxt, nxt))
                i += 2
        else:
            word.append(c)
            i += 1
    return -1


def encode(value: Any) -> bytes:
    """A value's RESP bytes (see the module docstring for the shapes); ValueError when it
    has none."""
    out = bytearray()
    try:
        _encode(value, out)
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"not a RESP value ({e}): {_short(value)}") from None
    return bytes(out)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def _encode(value: Any, out: bytearray) -> None:
    if isinstance(value, bool):
        raise ValueError("a bare boolean is no RESP value: write {bool: true}")
    if isinstance(value, int):
        out += b":%d\r\n" % value
    elif isinstance(value, str):
        _blob(b"$", value.encode("utf-8"), out)
    elif isinstance(value, list):
        _aggregate(b"*", value, out)
    elif isinstance(value, dict):
        _encode_tagged(value, out)
    else:
        raise ValueError(f"not a RESP value: {_short(value)}")


def _encode_tagged(value: dict[str, Any], out: bytearray) -> None:
    tag = next((k for k in _TAGS if k in value), None)
    if tag is None or set(value) != {tag, *_COMPANIONS.get(tag, ())}:
        raise ValueError(f"not a RESP value: {_short(value)}")
    data = value[tag]
    if tag == "base64":
        _blob(b"$", from_text_or_base64(value), out)
    elif tag in ("simple", "error", "double", "big"):
        out += _TAGS[tag] + from_text_or_base64(data) + CRLF
    elif tag == "raw":
        out += from_text_or_base64(data)
    elif tag == "null" and isinstance(data, str) and data in NULLS:
        out += NULLS[data]
    elif tag == "bool" and isinstance(data, bool):
        out += b"#t\r\n" if data else b"#f\r\n"
    elif tag == "blob_error":
        _blob(b"!", from_text_or_base64(data), out)
    elif tag == "verbatim":
        _blob(b"=", data.encode("latin-1") + b":" + from_text_or_base64(value["text"]), out)
    elif tag in ("map", "attributes"):
        out += b"%c%d\r\n" % (_TAGS[tag][0], len(data))
        for k, v in data:
            _encode(k, out)
            _encode(v, out)
        if tag == "attributes":
            _encode(value["value"], out)
    elif tag in ("set", "push"):
        _aggregate(_TAGS[tag], data, out)
    else:
        raise ValueError(f"not a RESP value: {_short(value)}")


_TAGS = {
    "base64": b"$",
    "simple": b"+",
    "error": b"-",
    "double": b",",
    "big": b"(",
    "raw": b"",
    "null": b"",
    "bool": b"#",
    "blob_error": b"!",
    "verbatim": b"=",
    "map": b"%",
    "attributes": b"|",
    "set": b"~",
    "push": b">",
}


_COMPANIONS = {"verbatim": ("text",), "attributes": ("value",)}


def _blob(kind: bytes, data: bytes, out: bytearray) -> None:
    out += b"%s%d\r\n" % (kind, len(data))
    out += data
    out += CRLF


def _aggregate(kind: bytes, items: list[Any], out: bytearray) -> None:
    out += b"%s%d\r\n" % (kind, len(items))
    for item in items:
        _encode(item, out)
