"""PostgreSQL v3 messages, one at a time: bytes to a YAML-ready dict and back. No I/O, no
connection state (that is ``postgres.py``).

A message is ``{"type": "<Name>", ...fields}``. ``decode_message`` checks every result by
encoding it again: a message that would not give back its exact bytes (a field order we do
not reproduce, a corrupt body) is kept as ``{"type": "<Name>", "base64": <body>}``, and so is
a type we do not know (``{"type": "<char>", "base64": ...}``), so nothing is lost.
``encode_message`` takes either form. Names are unique across both directions, so one
encoder serves client and server messages; the type byte is read per direction.

Authentication requests and answers other than ``AuthenticationOk`` (salts, nonces, proofs,
password hashes) are never decoded: ``decode_message`` refuses them.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Sequence
from typing import Any

from kpy_ci.protocols.base import Doc, ProtocolError, from_text_or_base64, text_or_base64

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_MAJOR = 3
AUTH_OK = b"R\x00\x00\x00\x08\x00\x00\x00\x00"

# fmt: off
FRONTEND = {
    "Q": "Query", "P": "Parse", "B": "Bind", "D": "Describe", "E": "Execute", "C": "Close",
    "H": "Flush", "S": "Sync", "F": "FunctionCall", "d": "CopyData", "c": "CopyDone",
    "f": "CopyFail", "X": "Terminate",
}
# fmt: on
"""Client message types. 'p' (password, SASL) is absent on purpose: it is never decoded."""

# fmt: off
BACKEND = {
    "R": "AuthenticationOk", "S": "ParameterStatus", "K": "BackendKeyData",
    "Z": "ReadyForQuery", "T": "RowDescription", "D": "DataRow", "C": "CommandComplete",
    "E": "ErrorResponse", "N": "NoticeResponse", "A": "NotificationResponse",
    "t": "ParameterDescription", "G": "CopyInResponse", "H": "CopyOutResponse",
    "W": "CopyBothResponse", "d": "CopyData", "c": "CopyDone", "1": "ParseComplete",
    "2": "BindComplete", "3": "CloseComplete", "n": "NoData", "s": "PortalSuspended",
    "I": "EmptyQueryResponse", "V": "FunctionCallResponse", "v": "NegotiateProtocolVersion",
}
# fmt: on

UNTYPED = ("StartupMessage", "SSLRequest", "GSSENCRequest", "CancelRequest")
CODES = {name: code for table in (FRONTEND, BACKEND) for code, name in table.items()}

# fmt: off
FIELDS = {
    "S": "severity", "V": "severity_nonlocalized", "C": "code", "M": "message",
    "D": "detail", "H": "hint", "P": "position", "p": "internal_position",
    "q": "internal_query", "W": "where", "s": "schema", "t": "table", "c": "column",
    "d": "data_type", "n": "constraint", "F": "file", "L": "line", "R": "routine",
}
# fmt: on
"""ErrorResponse/NoticeResponse field codes, in the order PostgreSQL sends them (elog.c),
which is the order they are encoded in, whatever order a YAML file keeps keys in."""
FIELD_CODES = {name: code for code, name in FIELDS.items()}


class _Malformed(Exception):
    """The body does not parse as its type says: keep it as base64."""


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, start: int) -> None:
        self.data, self.pos, self.end = data, start, len(data)

    def _unpack(self, fmt: str, size: int) -> int:
        if self.pos + size > self.end:
            raise _Malformed("short message")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def i16(self) -> int:
        return self._unpack(">h", 2)

    def i32(self) -> int:
        return self._unpack(">i", 4)

    def u32(self) -> int:
        return self._unpack(">I", 4)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _Malformed("short message")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def cstr(self) -> bytes:
        nul = self.data.find(b"\0", self.pos)
        if nul < 0:
            raise _Malformed("unterminated string")
        value, self.pos = self.data[self.pos : nul], nul + 1
        return value

    def text(self) -> str | Doc:
        return text_or_base64(self.cstr())

    def rest(self) -> bytes:
        return self.take(self.end - self.pos)

    def i16s(self) -> list[int]:
        return [self.i16() for _ in range(self.i16())]


def _b64(data: bytes) -> Doc:
    return {"base64": base64.b64encode(data).decode("ascii")}


def _value(data: bytes | None, binary: bool) -> str | Doc | None:
    """A parameter or column value: None for NULL, str for text, base64 for binary."""
    if data is None:
        return None
    return _b64(data) if binary else text_or_base64(data)


def _values(r: _Reader, formats: Sequence[int]) -> list[str | Doc | None]:
    """int16 count, then (int32 length, bytes) each; length -1 is NULL. ``formats`` as in
    Bind: none (all text), one (for all) or one per value."""
    values: list[str | Doc | None] = []
    for i in range(r.i16()):
        size = r.i32()
        fmt = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
        values.append(_value(None if size == -1 else r.take(size), fmt == 1))
    return values


# Decoders: (reader positioned after the header, column formats) -> fields.
Decoder = Callable[[_Reader, Sequence[int]], Doc]


def _error_fields(r: _Reader, _: Sequence[int]) -> Doc:
    fields: Doc = {}
    while (code := r.take(1)) != b"\0":
        key = FIELDS.get(code.decode("latin-1"), code.decode("latin-1"))
        if key in fields:
            raise _Malformed("repeated field")
        fields[key] = r.text()
    return fields


def _row_description(r: _Reader, _: Sequence[int]) -> Doc:
    fields = []
    for _i in range(r.i16()):
        name = r.text()
        table_oid, column, type_oid = r.u32(), r.i16(), r.u32()
        type_size, type_modifier, fmt = r.i16(), r.i32(), r.i16()
        fields.append(
            {
                "name": name,
                "table_oid": table_oid,
                "column": column,
                "type_oid": type_oid,
                "type_size": type_size,
                "type_modifier": type_modifier,
                "format": fmt,
            }
        )
    return {"fields": fields}


def _bind(r: _Reader, _: Sequence[int]) -> Doc:
    portal, statement, formats = r.text(), r.text(), r.i16s()
    params = _values(r, formats)
    doc = {"portal": portal, "statement": statement, "param_formats": formats}
    return {**doc, "params": params, "result_formats": r.i16s()}


def _target(r: _Reader, _: Sequence[int]) -> Doc:
    kind = r.take(1)
    if kind not in (b"S", b"P"):
        raise _Malformed("Describe/Close of neither S nor P")
    return {"statement" if kind == b"S" else "portal": r.text()}


def _function_call(r: _Reader, _: Sequence[int]) -> Doc:
    oid, formats = r.u32(), r.i16s()
    args = _values(r, formats)
    return {"function_oid": oid, "arg_formats": formats, "args": args, "result_format": r.i16()}


def _function_result(r: _Reader, _: Sequence[int]) -> Doc:
    size = r.i32()
    return {"result": _value(None if size == -1 else r.take(size), False)}


def _key_data(r: _Reader, _: Sequence[int]) -> Doc:
    pid, key = r.i32(), r.rest()  # protocol 3.2 allows keys longer than 4 bytes
    secret = struct.unpack(">i", key)[0] if len(key) == 4 else _b64(key)
    return {"process_id": pid, "secret_key": secret}


def _copy_response(r: _Reader, _: Sequence[int]) -> Doc:
    return {"format": r.take(1)[0], "column_formats": r.i16s()}


def _auth_ok(r: _Reader, _: Sequence[int]) -> Doc:
    if r.i32() != 0:
        raise ProtocolError("authentication exchanges are never decoded")
    return {}


def _parse(r: _Reader, _: Sequence[int]) -> Doc:
    statement, sql = r.text(), r.text()
    return {"statement": statement, "sql": sql, "param_types": [r.u32() for _ in range(r.i16())]}


def _notification(r: _Reader, _: Sequence[int]) -> Doc:
    return {"process_id": r.i32(), "channel": r.text(), "payload": r.text()}


def _negotiate(r: _Reader, _: Sequence[int]) -> Doc:
    minor = r.i32()
    return {"newest_minor": minor, "unrecognized_options": [r.text() for _ in range(r.i32())]}


# fmt: off
DECODERS: dict[str, Decoder] = {
    "Query": lambda r, _: {"sql": r.text()},
    "Parse": _parse,
    "Bind": _bind,
    "Describe": _target,
    "Close": _target,
    "Execute": lambda r, _: {"portal": r.text(), "max_rows": r.i32()},
    "FunctionCall": _function_call,
    "CopyFail": lambda r, _: {"message": r.text()},
    "CopyData": lambda r, _: {"data": text_or_base64(r.rest())},
    "AuthenticationOk": _auth_ok,
    "ParameterStatus": lambda r, _: {"name": r.text(), "value": r.text()},
    "BackendKeyData": _key_data,
    "ReadyForQuery": lambda r, _: {"status": r.take(1).decode("latin-1")},
    "RowDescription": _row_description,
    "DataRow": lambda r, formats: {"values": _values(r, formats)},
    "CommandComplete": lambda r, _: {"tag": r.text()},
    "ErrorResponse": _error_fields,
    "NoticeResponse": _error_fields,
    "NotificationResponse": _notification,
    "ParameterDescription": lambda r, _: {"type_oids": [r.u32() for _ in range(r.i16())]},
    "CopyInResponse": _copy_response,
    "CopyOutResponse": _copy_response,
    "CopyBothResponse": _copy_response,
    "FunctionCallResponse": _function_result,
    "NegotiateProtocolVersion": _negotiate,
}
# fmt: on
"""Types absent here carry no fields (Sync, Flush, ParseComplete, NoData, ...)."""


def decode_message(raw: bytes, frontend: bool, formats: Sequence[int] = ()) -> Doc:
    """One typed message (type byte, length, body) as a dict. ``formats`` are the column
    formats of the RowDescription in force, so binary DataRow values show as base64."""
    code = raw[:1].decode("latin-1")
    name = (FRONTEND if frontend else BACKEND).get(code)
    if name is None:
        if frontend and code == "p":
            raise ProtocolError("authentication exchanges are never decoded")
        return {"type": code, **_b64(raw[5:])}
    doc: Doc = {"type": name}
    try:
        reader = _Reader(raw, 5)
        decoder = DECODERS.get(name)
        if decoder is not None:
            doc.update(decoder(reader, formats))
        if reader.pos != reader.end:
            raise _Malformed("trailing bytes")
        if encode_message(doc) == raw:
            return doc
    except (_Malformed, struct.error, ValueError):  # not as its type says: keep it whole
        pass
    return {"type": name, **_b64(raw[5:])}


def decode_untyped(raw: bytes) -> Doc:
    """A packet without a type byte: StartupMessage, SSLRequest, GSSENCRequest,
    CancelRequest (the caller has checked the length)."""
    code = struct.unpack_from(">I", raw, 4)[0]
    if code == SSL_REQUEST:
        return {"type": "SSLRequest"}
    if code == GSSENC_REQUEST:
        return {"type": "GSSENCRequest"}
    r = _Reader(raw, 8)
    try:
        if code == CANCEL_REQUEST:
            return {"type": "CancelRequest", **_key_data(r, ())}
        parameters: dict[str, Any] = {}
        while r.data[r.pos : r.pos + 1] not in (b"\0", b""):
            name = r.cstr().decode("utf-8", "replace")
            parameters[name] = r.text()
    except _Malformed as e:
        raise ProtocolError(f"bad startup packet: {e}") from e
    protocol = f"{code >> 16}.{code & 0xFFFF}"
    return {"type": "StartupMessage", "protocol": protocol, "parameters": parameters}


# Encoders -------------------------------------------------------------------------------


def _i16(*values: int) -> bytes:
    return struct.pack(f">{len(values)}h", *values)


def _i32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}i", *values)


def _u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def _cstr(value: str | Doc) -> bytes:
    return from_text_or_base64(value) + b"\0"


def _counted(numbers: Sequence[int], pack: Callable[..., bytes] = _i16) -> bytes:
    return _i16(len(numbers)) + pack(*numbers)


def _encode_values(values: Sequence[str | Doc | None]) -> bytes:
    out = [_i16(len(values))]
    for value in values:
        data = None if value is None else from_text_or_base64(value)
        out.append(_i32(-1) if data is None else _i32(len(data)) + data)
    return b"".join(out)


def _encode_error(d: Doc) -> bytes:
    known = [code.encode() + _cstr(d[name]) for code, name in FIELDS.items() if name in d]
    other = sorted(k for k in d if k != "type" and k not in FIELD_CODES)
    return b"".join(known + [k.encode("latin-1") + _cstr(d[k]) for k in other]) + b"\0"


def _encode_target(d: Doc) -> bytes:
    return b"S" + _cstr(d["statement"]) if "statement" in d else b"P" + _cstr(d["portal"])


def _encode_key(d: Doc) -> bytes:
    key = d["secret_key"]
    secret = _i32(key) if isinstance(key, int) else from_text_or_base64(key)
    return _i32(d["process_id"]) + secret


def _encode_startup(d: Doc) -> bytes:
    major, minor = (int(n) for n in str(d["protocol"]).split("."))
    pairs = b"".join(_cstr(k) + _cstr(v) for k, v in d["parameters"].items())
    return _u32(major << 16 | minor) + pairs + b"\0"


def _encode_parse(d: Doc) -> bytes:
    return _cstr(d["statement"]) + _cstr(d["sql"]) + _counted(d["param_types"], _u32)


def _encode_bind(d: Doc) -> bytes:
    names = _cstr(d["portal"]) + _cstr(d["statement"])
    params = _counted(d["param_formats"]) + _encode_values(d["params"])
    return names + params + _counted(d["result_formats"])


def _encode_function_call(d: Doc) -> bytes:
    args = _counted(d["arg_formats"]) + _encode_values(d["args"])
    return _u32(d["function_oid"]) + args + _i16(d["result_format"])


def _encode_row_description(d: Doc) -> bytes:
    out = [_i16(len(d["fields"]))]
    for f in d["fields"]:
        out += [_cstr(f["name"]), _u32(f["table_oid"]), _i16(f["column"]), _u32(f["type_oid"])]
        out += [_i16(f["type_size"]), _i32(f["type_modifier"]), _i16(f["format"])]
    return b"".join(out)


def _encode_copy_response(d: Doc) -> bytes:
    return bytes([d["format"]]) + _counted(d["column_formats"])


def _encode_negotiate(d: Doc) -> bytes:
    options = d["unrecognized_options"]
    return _i32(d["newest_minor"], len(options)) + b"".join(map(_cstr, options))


Encoder = Callable[[Doc], bytes]

# fmt: off
ENCODERS: dict[str, Encoder] = {
    "Query": lambda d: _cstr(d["sql"]),
    "Parse": _encode_parse,
    "Bind": _encode_bind,
    "Describe": _encode_target,
    "Close": _encode_target,
    "Execute": lambda d: _cstr(d["portal"]) + _i32(d["max_rows"]),
    "FunctionCall": _encode_function_call,
    "CopyFail": lambda d: _cstr(d["message"]),
    "CopyData": lambda d: from_text_or_base64(d["data"]),
    "AuthenticationOk": lambda d: _i32(0),
    "ParameterStatus": lambda d: _cstr(d["name"]) + _cstr(d["value"]),
    "BackendKeyData": _encode_key,
    "ReadyForQuery": lambda d: str(d["status"]).encode("latin-1"),
    "RowDescription": _encode_row_description,
    "DataRow": lambda d: _encode_values(d["values"]),
    "CommandComplete": lambda d: _cstr(d["tag"]),
    "ErrorResponse": _encode_error,
    "NoticeResponse": _encode_error,
    "NotificationResponse": lambda d: _i32(d["process_id"]) + _cstr(d["channel"])
                                      + _cstr(d["payload"]),
    "ParameterDescription": lambda d: _counted(d["type_oids"], _u32),
    "CopyInResponse": _encode_copy_response,
    "CopyOutResponse": _encode_copy_response,
    "CopyBothResponse": _encode_copy_response,
    "FunctionCallResponse": lambda d: _encode_values([d["result"]])[2:],
    "NegotiateProtocolVersion": _encode_negotiate,
    "StartupMessage": _encode_startup,
    "SSLRequest": lambda d: _u32(SSL_REQUEST),
    "GSSENCRequest": lambda d: _u32(GSSENC_REQUEST),
    "CancelRequest": lambda d: _u32(CANCEL_REQUEST) + _encode_key(d),
}
# fmt: on


def _no_fields(doc: Doc) -> bytes:
    return b""


def encode_message(doc: Doc) -> bytes:
    """The wire bytes of one message dict, as ``decode_message``/``decode_untyped`` made it."""
    name = str(doc["type"])
    body = from_text_or_base64(doc) if "base64" in doc else ENCODERS.get(name, _no_fields)(doc)
    if name in UNTYPED:
        return _i32(len(body) + 4) + body
    code = CODES.get(name, name)
    if len(code) != 1:
        raise ValueError(f"unknown PostgreSQL message type {name!r}")
    return code.encode("latin-1") + _i32(len(body) + 4) + body
