"""A server's whole answer to one request, as one document, and back to its bytes.

A response is ``{"seq": N, "results": [item, ...]}``: ``seq`` the sequence id of its first
packet; each item is one or more packets that follow on (an item whose first packet does
not follow on, as after the client's LOCAL INFILE data, says its own ``seq``). Items:

- ``{"greeting": {...}}`` the server's Initial Handshake (a connection's set-up);
- ``{"switch": {plugin, data}}`` / ``{"more": ...}``: authentication packets (0xFE, 0x01);
- ``{"ok": {...}}``, ``{"error": {...}}``, ``{"eof": {...}}``;
- ``{"columns": [...], "columns_end": {eof}, "rows": [...], "end": {"eof"|"ok"|"error"}}``:
  a result set (``binary: true`` for a prepared statement's rows; ``columns_end`` only
  where the EOF after the column definitions was sent, without CLIENT_DEPRECATE_EOF);
- ``{"prepared": {statement_id, columns, params, warnings}, "params": [...], ...}``: the
  answer to COM_STMT_PREPARE, its parameter and column definitions;
- ``{"local_infile": NAME}``: the server asks for the client's file (0xFB);
- ``{"packet": ...}``: a packet kept as it came.

``encode_response`` gives back the exact bytes: where the decoded items would not, the
recorder keeps the packets as they came instead (``{"seq": N, "packet": ...}`` each).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kpy_ci.protocols.base import Doc, ProtocolError, from_text_or_base64, text_or_base64
from kpy_ci.protocols.mysql import flags, results
from kpy_ci.protocols.mysql.handshake import (
    decode_auth_packet,
    decode_greeting,
    encode_auth_packet,
    encode_greeting,
)
from kpy_ci.protocols.mysql.packets import Packet, Reader, encode_packet, lenenc_int, physical_count

# what kind of answer a request gets
NONE, RESULT, PREPARE, SIMPLE, FIELD_LIST, AUTH, FETCH, CONNECT = (
    "none",
    "result",
    "prepare",
    "simple",
    "field_list",
    "auth",
    "fetch",
    "connect",
)


@dataclass
class Negotiated:
    """What the connection agreed, as far as answers are shaped by it."""

    deprecate_eof: bool = False
    optional_metadata: bool = False  # a metadata_follows byte after the column count
    extended_types: bool = False  # MariaDB's extended type info in column definitions

    @classmethod
    def of(cls, caps: int, extended: int) -> Negotiated:
        return cls(
            deprecate_eof=bool(caps & flags.DEPRECATE_EOF),
            optional_metadata=bool(
                caps & flags.OPTIONAL_METADATA or extended & flags.MARIADB_CACHE_METADATA
            ),
            extended_types=bool(extended & flags.MARIADB_EXTENDED_TYPE_INFO),
        )


@dataclass
class Builder:
    """Follows one answer packet by packet: ``feed`` says when it is whole."""

    kind: str
    negotiated: Negotiated
    binary: bool = False
    results: list[Doc] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    packets: list[Packet] = field(default_factory=list)
    first_seq: int | None = None
    done: bool = False
    waiting_infile: bool = False  # the server asked for the client's file
    _expected: int | None = None
    _state: str = "first"
    _item: Doc | None = None
    _count: int = 0
    _irregular: bool = False

    def __post_init__(self) -> None:
        if self.kind == NONE:
            self.done = True
        if self.kind == CONNECT:
            self._state = "greeting"

    def feed(self, packet: Packet) -> bool:
        if self.done:
            raise ProtocolError("MySQL server sent a packet no request asked for")
        self.packets.append(packet)
        self.raw += encode_packet(packet.payload, packet.seq)
        seq = packet.seq
        if self.first_seq is None:
            self.first_seq = seq
        starts_item = self._state in ("first", "greeting", "auth")
        if self._expected is not None and seq != self._expected and not starts_item:
            self._irregular = True
        self._seq_for_item = None if seq == self._expected or self._expected is None else seq
        self._expected = (seq + packet.parts) & 0xFF
        getattr(self, "_" + self._state)(packet.payload)
        return self.done

    def infile_sent(self) -> None:
        """The client sent its file (up to the empty packet): the answer goes on."""
        self.waiting_infile = False

    # states ----------------------------------------------------------------------------

    def _add(self, item: Doc) -> Doc:
        if self._seq_for_item is not None:
            item = {"seq": self._seq_for_item, **item}
        self.results.append(item)
        return item

    def _greeting(self, data: bytes) -> None:
        if data[:1] == b"\xff":
            self._add({"error": results.checked(results.decode_err, results.encode_err, data)})
            self.done = True
            return
        self._add({"greeting": results.checked(decode_greeting, encode_greeting, data)})
        self._state = "auth"

    def _auth(self, data: bytes) -> None:
        if data[:1] in (b"\x00", b"\xff"):
            self._simple(data)
            return
        self._add(decode_auth_packet(data))

    def _simple(self, data: bytes) -> None:
        self._add(self._single(data))
        self.done = True

    def _single(self, data: bytes) -> Doc:
        head = data[:1]
        if head == b"\x00" and len(data) >= 7:
            ok = results.checked(results.decode_ok, results.encode_ok, data)
            if "base64" not in ok:
                return {"ok": ok}
        elif head == b"\xff":
            return {"error": results.checked(results.decode_err, results.encode_err, data)}
        elif head == b"\xfe" and len(data) == 5:
            return {"eof": results.decode_eof(data)}
        return {"packet": text_or_base64(data)}

    def _end(self, data: bytes) -> Doc:
        """The packet that ends rows or definitions: EOF, or OK with 0xFE (DEPRECATE_EOF)."""
        if self.negotiated.deprecate_eof:
            ok = results.checked(
                results.decode_ok, lambda d: results.encode_ok(d, header=0xFE), data
            )
            if "base64" not in ok:
                return {"ok": ok}
        elif len(data) == 5:
            return {"eof": results.decode_eof(data)}
        return {"packet": text_or_base64(data)}

    def _first(self, data: bytes) -> None:
        head = data[:1]
        if self.kind == SIMPLE:
            self._simple(data)
        elif self.kind == AUTH:
            self._auth(data)
        elif head == b"\xff":
            if data[1:3] == b"\xff\xff":  # MariaDB's progress report: the answer goes on
                self._add({"packet": text_or_base64(data)})
                return
            self._simple(data)
        elif self.kind == PREPARE:
            self._prepared(data)
        elif self.kind == FIELD_LIST:
            self._item = self._add({"columns": []})
            self._state = "field_list"
            self._field_list(data)
        elif self.kind == FETCH:
            self._item = self._add({"binary": True, "rows": []})
            self._state = "rows"
            self._rows(data)
        elif head == b"\x00":
            self._add(self._single(data))
            self._more()
        elif head == b"\xfb":
            self._add({"local_infile": text_or_base64(data[1:])})
            self.waiting_infile = True
        else:
            self._column_count(data)

    def _more(self) -> None:
        """After an OK or a result set's end: more results follow, or the answer is whole."""
        last = self.results[-1] if self._item is None else self._item["end"]
        if not results.status_of(last) & flags.MORE_RESULTS:
            self.done = True
        self._state, self._item = "first", None

    def _column_count(self, data: bytes) -> None:
        r = Reader(data)
        count = r.lenenc()
        if count is None or count == 0:
            raise ProtocolError("MySQL result set without columns")
        item: Doc = {"columns": []}
        if self.binary:
            item = {"binary": True, **item}
        follows = 1
        if self.negotiated.optional_metadata and r.left:
            follows = r.uint(1)
            item["metadata_follows"] = follows
        if r.left:
            raise ProtocolError("MySQL column count packet longer than its fields")
        if not follows:
            item["column_count"] = count
            if self.binary and len(self.known_columns or ()) == count:
                item["column_types"] = list(self.known_columns or ())
        self._item = self._add(item)
        self._count = count if follows else 0
        self._state = "columns" if self._count else "rows"
        item["rows"] = []

    def _columns(self, data: bytes) -> None:
        assert self._item is not None
        self._item["columns"].append(results.column_checked(data, self.negotiated.extended_types))
        self._count -= 1
        if not self._count:
            self._state = "rows" if self.negotiated.deprecate_eof else "columns_end"

    def _columns_end(self, data: bytes) -> None:
        assert self._item is not None
        if len(data) != 5 or data[0] != 0xFE:
            raise ProtocolError("MySQL column definitions not followed by EOF")
        end = results.decode_eof(data)
        self._item["columns_end"] = end
        self._state = "rows"
        if flags.value(end["status"], flags.STATUS) & flags.CURSOR_EXISTS:
            del self._item["rows"]  # a cursor: the rows come with COM_STMT_FETCH
            self.done = True

    def _rows(self, data: bytes) -> None:
        assert self._item is not None
        if data[:1] == b"\xfe" and len(data) < 0xFFFFFF:
            self._item["end"] = self._end(data)
            self._more()
        elif data[:1] == b"\xff":
            self._item["end"] = self._single(data)
            self.done = True
        else:
            columns = self._item.get("columns", [])
            if "column_types" in self._item:
                known = results.kinds_of(self._item["column_types"])
                self._item["rows"].append(results.row_checked(data, len(known), known))
                return
            if self.kind == FETCH or not columns:
                self._item["rows"].append({"base64": results.b64(data)})
                return
            kinds = results.column_kinds(columns) if self.binary else None
            if self.binary and kinds is None:
                self._item["rows"].append({"base64": results.b64(data)})
            else:
                self._item["rows"].append(results.row_checked(data, len(columns), kinds))

    def _field_list(self, data: bytes) -> None:
        assert self._item is not None
        if data[:1] == b"\xfe" and len(data) < 0xFFFFFF:
            self._item["end"] = self._end(data)
            self.done = True
        elif data[:1] == b"\xff":
            self._item["end"] = self._single(data)
            self.done = True
        else:
            column = results.column_checked(data, self.negotiated.extended_types, True)
            self._item["columns"].append(column)

    def _prepared(self, data: bytes) -> None:
        r = Reader(data, 1)
        statement_id, columns, params = r.uint(4), r.uint(2), r.uint(2)
        r.take(1)
        prepared: Doc = {"statement_id": statement_id, "columns": columns, "params": params}
        prepared["warnings"] = r.uint(2) if r.left >= 2 else 0
        if r.left:
            prepared["extra"] = text_or_base64(r.rest())
        if data[9:10] != b"\0" or len(data) < 12:
            item: Doc = {"packet": text_or_base64(data)}
        else:
            item = {"prepared": prepared}
        self._item = self._add(item)
        self._item["params"], self._item["columns"] = [], []
        self._counts = [params, columns]
        self.statement = (statement_id, params, columns)
        self._next_definitions()

    def _next_definitions(self) -> None:
        while self._counts and self._counts[0] == 0:
            self._counts.pop(0)
        if not self._counts:
            self.done = True
            return
        self._state = "definitions"

    def _definitions(self, data: bytes) -> None:
        assert self._item is not None
        which = "params" if len(self._counts) == 2 else "columns"
        self._item[which].append(results.column_checked(data, self.negotiated.extended_types))
        self._counts[0] -= 1
        if self._counts[0] == 0:
            if self.negotiated.deprecate_eof:
                self._counts.pop(0)
                self._next_definitions()
            else:
                self._state = "definitions_end"

    def _definitions_end(self, data: bytes) -> None:
        assert self._item is not None
        which = "params" if len(self._counts) == 2 else "columns"
        if len(data) != 5 or data[0] != 0xFE:
            raise ProtocolError("MySQL prepared statement definitions not followed by EOF")
        self._item[which + "_end"] = results.decode_eof(data)
        self._counts.pop(0)
        self._next_definitions()

    # the document ----------------------------------------------------------------------

    def document(self) -> Doc:
        """The answer as a document that re-encodes to exactly ``raw`` (the packets kept as
        they came where the decoded form would not)."""
        doc: Doc = {"seq": self.first_seq if self.first_seq is not None else 1}
        doc["results"] = self.results
        if not self._irregular:
            try:
                if encode_response(doc) == bytes(self.raw):
                    return doc
            except (ProtocolError, ValueError, KeyError, TypeError, OverflowError, AssertionError):
                pass
        return {
            "seq": doc["seq"],
            "results": [{"seq": p.seq, "packet": text_or_base64(p.payload)} for p in self.packets],
        }

    _counts: list[int] = field(default_factory=list)
    _seq_for_item: int | None = None
    statement: tuple[int, int, int] | None = None
    known_columns: list[str] | None = None  # an EXECUTE's: its statement's column types


# encoding --------------------------------------------------------------------------------


def _item_payloads(item: Doc) -> list[bytes]:
    if "packet" in item:
        return [from_text_or_base64(item["packet"]), *_definitions(item)]
    if "greeting" in item:
        g = item["greeting"]
        return [from_text_or_base64(g) if "base64" in g else encode_greeting(g)]
    if "switch" in item or "more" in item:
        return [encode_auth_packet(item)]
    if "local_infile" in item:
        return [b"\xfb" + from_text_or_base64(item["local_infile"])]
    if "prepared" in item:
        p = item["prepared"]
        head = b"\0" + p["statement_id"].to_bytes(4, "little")
        head += p["columns"].to_bytes(2, "little") + p["params"].to_bytes(2, "little") + b"\0"
        head += p["warnings"].to_bytes(2, "little")
        if "extra" in p:
            head += from_text_or_base64(p["extra"])
        return [head, *_definitions(item)]
    if "columns" in item or "rows" in item:
        return _result_set(item)
    return [_single_payload(item)]


def _definitions(item: Doc) -> list[bytes]:
    out = []
    for which in ("params", "columns"):
        out += [results.encode_column(c) for c in item.get(which, [])]
        if which + "_end" in item:
            out.append(results.encode_eof(item[which + "_end"]))
    return out


def _single_payload(item: Doc, header: int = 0) -> bytes:
    if "ok" in item:
        return results.encode_ok(item["ok"], header)
    if "error" in item:
        e = item["error"]
        return from_text_or_base64(e) if "base64" in e else results.encode_err(e)
    if "eof" in item:
        return results.encode_eof(item["eof"])
    if "packet" in item:
        return from_text_or_base64(item["packet"])
    raise ValueError(f"not a MySQL response item: {sorted(item)}")


def _result_set(item: Doc) -> list[bytes]:
    out: list[bytes] = []
    columns = item.get("columns", [])
    if "column_count" in item or "metadata_follows" in item or columns:
        head = lenenc_int(item.get("column_count", len(columns)))
        if "metadata_follows" in item:
            head += bytes([item["metadata_follows"]])
        out.append(head)
        out += [results.encode_column(c) for c in columns]
        if "columns_end" in item:
            out.append(results.encode_eof(item["columns_end"]))
    kinds = results.column_kinds(columns) if item.get("binary") and columns else None
    if "column_types" in item:
        kinds = results.kinds_of(item["column_types"])
    for row in item.get("rows", []):
        if item.get("binary"):
            out.append(results.encode_binary_row(row, kinds))
        else:
            out.append(results.encode_text_row(row))
    if "end" in item:
        out.append(_single_payload(item["end"], 0xFE))
    return out


def encode_response(response: Doc) -> bytes:
    """The bytes the server sent, from an exchange's ``response``."""
    seq = int(response.get("seq", 1))
    out = bytearray()
    for item in response.get("results", []):
        if "seq" in item:
            seq = item["seq"]
        for payload in _item_payloads(item):
            out += encode_packet(payload, seq)
            seq = (seq + physical_count(len(payload))) & 0xFF
    return bytes(out)
