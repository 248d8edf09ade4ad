"""What a MySQL server answers, packet by packet: OK, ERR and EOF packets, column
definitions, text rows and binary rows (every column type: integers signed and unsigned,
FLOAT/DOUBLE, DECIMAL, dates and times, strings and blobs, the NULL bitmap). Each decoder
has its encoder; a packet whose decoded form would not give back its exact bytes is kept
whole (``{"packet": ...}``, a row or column as ``{"base64": ...}``). Sans-I/O."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

from kpy_ci.protocols.base import Doc, ProtocolError, from_text_or_base64, text_or_base64
from kpy_ci.protocols.mysql import flags
from kpy_ci.protocols.mysql.packets import Reader, lenenc_int, lenenc_str

TYPES = {
    0: "DECIMAL",
    1: "TINY",
    2: "SHORT",
    3: "LONG",
    4: "FLOAT",
    5: "DOUBLE",
    6: "NULL",
    7: "TIMESTAMP",
    8: "LONGLONG",
    9: "INT24",
    10: "DATE",
    11: "TIME",
    12: "DATETIME",
    13: "YEAR",
    14: "NEWDATE",
    15: "VARCHAR",
    16: "BIT",
    17: "TIMESTAMP2",
    18: "DATETIME2",
    19: "TIME2",
    20: "TYPED_ARRAY",
    242: "VECTOR",
    245: "JSON",
    246: "NEWDECIMAL",
    247: "ENUM",
    248: "SET",
    249: "TINY_BLOB",
    250: "MEDIUM_BLOB",
    251: "LONG_BLOB",
    252: "BLOB",
    253: "VAR_STRING",
    254: "STRING",
    255: "GEOMETRY",
}
TYPE_CODES = {name: code for code, name in TYPES.items()}
_INT_SIZES = {"TINY": 1, "SHORT": 2, "YEAR": 2, "LONG": 4, "INT24": 4, "LONGLONG": 8}
_DATES = frozenset({"DATE", "DATETIME", "TIMESTAMP", "NEWDATE"})


def type_name(code: int) -> str:
    return TYPES.get(code, f"TYPE_{code}")


def type_code(name: str) -> int:
    return TYPE_CODES[name] if name in TYPE_CODES else int(name.removeprefix("TYPE_"))


def checked(decode: Callable[[bytes], Doc], encode: Callable[[Doc], bytes], data: bytes) -> Doc:
    """``decode(data)`` if it encodes back to ``data``, else the bytes kept as they are."""
    try:
        doc = decode(data)
        if encode(doc) == data:
            return doc
    except (
        ProtocolError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        OverflowError,
        struct.error,
    ):
        pass
    return {"base64": b64(data)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# OK, ERR, EOF --------------------------------------------------------------------------


def decode_ok(data: bytes) -> Doc:
    """An OK packet (header 0x00, or 0xFE where it ends a result set without EOF); its
    session state changes are kept as bytes."""
    r = Reader(data, 1)
    doc: Doc = {"affected_rows": r.lenenc(), "last_insert_id": r.lenenc()}
    status = r.uint(2)
    doc["status"] = flags.names(status, flags.STATUS, 16)
    doc["warnings"] = r.uint(2)
    if r.left:  # the info is length-encoded (MySQL and MariaDB alike)
        doc["info"] = text_or_base64(r.lenenc_required())
        if status & flags.SESSION_STATE_CHANGED and r.left:
            doc["session_state"] = text_or_base64(r.lenenc_required())
    if r.left:
        raise ProtocolError("MySQL OK packet longer than its fields")
    return doc


def encode_ok(doc: Doc, header: int = 0) -> bytes:
    out = bytearray([header])
    out += lenenc_int(doc["affected_rows"]) + lenenc_int(doc["last_insert_id"])
    out += struct.pack("<HH", flags.value(doc["status"], flags.STATUS), doc["warnings"])
    if "info" in doc:
        out += lenenc_str(from_text_or_base64(doc["info"]))
    if "session_state" in doc:
        out += lenenc_str(from_text_or_base64(doc["session_state"]))
    return bytes(out)


def decode_err(data: bytes) -> Doc:
    r = Reader(data, 1)
    doc: Doc = {"code": r.uint(2)}
    if r.left and data[r.pos] == 0x23:  # '#': a SQLSTATE follows (after the handshake)
        r.take(1)
        doc["sql_state"] = r.take(5).decode("ascii")
    doc["message"] = text_or_base64(r.rest())
    return doc


def encode_err(doc: Doc) -> bytes:
    out = b"\xff" + struct.pack("<H", doc["code"])
    if "sql_state" in doc:
        out += b"#" + str(doc["sql_state"]).encode("ascii")
    return out + from_text_or_base64(doc["message"])


def error_packet(code: int, sql_state: str, message: str) -> bytes:
    return encode_err({"code": code, "sql_state": sql_state, "message": message})


def decode_eof(data: bytes) -> Doc:
    if len(data) != 5:
        raise ProtocolError("MySQL EOF packet of another size")
    warnings, status = struct.unpack_from("<HH", data, 1)
    return {"warnings": warnings, "status": flags.names(status, flags.STATUS, 16)}


def encode_eof(doc: Doc) -> bytes:
    return b"\xfe" + struct.pack("<HH", doc["warnings"], flags.value(doc["status"], flags.STATUS))


def status_of(doc: Doc) -> int:
    """The server status of an OK or EOF doc (0 for anything else)."""
    inner = doc.get("ok") or doc.get("eof")
    return flags.value(inner["status"], flags.STATUS) if isinstance(inner, dict) else 0


# column definitions ----------------------------------------------------------------------


def decode_column(data: bytes, extended: bool = False, field_list: bool = False) -> Doc:
    """A ColumnDefinition41. ``extended``: MariaDB's extended type info follows org_name;
    ``field_list``: COM_FIELD_LIST's default value ends it."""
    r = Reader(data)
    catalog = r.lenenc_required()
    schema, table, org_table = r.lenenc_required(), r.lenenc_required(), r.lenenc_required()
    name, org_name = r.lenenc_required(), r.lenenc_required()
    doc: Doc = {"name": text_or_base64(name), "type": ""}
    if extended:
        doc["extended"] = text_or_base64(r.lenenc_required())
    fixed = r.lenenc()
    if fixed != 0x0C:
        raise ProtocolError("MySQL column definition with other fixed fields")
    charset, length, code, column_flags, decimals = struct.unpack("<HIBHB", r.take(10))
    if r.take(2) != b"\0\0":
        raise ProtocolError("MySQL column definition filler is not zero")
    doc["type"] = type_name(code)
    doc.update(schema=text_or_base64(schema), table=text_or_base64(table))
    if org_table != table:
        doc["org_table"] = text_or_base64(org_table)
    if org_name != name:
        doc["org_name"] = text_or_base64(org_name)
    if catalog != b"def":
        doc["catalog"] = text_or_base64(catalog)
    doc.update(charset=charset, length=length)
    doc["flags"] = flags.names(column_flags, flags.COLUMN_FLAGS, 16)
    doc["decimals"] = decimals
    if field_list and r.left:
        default = r.lenenc_bytes()
        doc["default"] = None if default is None else text_or_base64(default)
    if r.left:
        raise ProtocolError("MySQL column definition longer than its fields")
    return doc


def encode_column(doc: Doc) -> bytes:
    if "base64" in doc:
        return from_text_or_base64(doc)
    name, table = from_text_or_base64(doc["name"]), from_text_or_base64(doc["table"])
    out = bytearray(lenenc_str(from_text_or_base64(doc.get("catalog", "def"))))
    out += lenenc_str(from_text_or_base64(doc["schema"])) + lenenc_str(table)
    out += lenenc_str(from_text_or_base64(doc["org_table"]) if "org_table" in doc else table)
    out += lenenc_str(name)
    out += lenenc_str(from_text_or_base64(doc["org_name"]) if "org_name" in doc else name)
    if "extended" in doc:
        out += lenenc_str(from_text_or_base64(doc["extended"]))
    column_flags = flags.value(doc["flags"], flags.COLUMN_FLAGS)
    out += b"\x0c" + struct.pack(
        "<HIBHB",
        doc["charset"],
        doc["length"],
        type_code(doc["type"]),
        column_flags,
        doc["decimals"],
    )
    out += b"\0\0"
    if "default" in doc:
        out += (
            b"\xfb" if doc["default"] is None else lenenc_str(from_text_or_base64(doc["default"]))
        )
    return bytes(out)


def column_checked(data: bytes, extended: bool = False, field_list: bool = False) -> Doc:
    return checked(lambda d: decode_column(d, extended, field_list), encode_column, data)


# text rows -----------------------------------------------------------------------------


def decode_text_row(data: bytes, count: int) -> list[Any]:
    r = Reader(data)
    row: list[Any] = []
    for _ in range(count):
        value = r.lenenc_bytes()
        row.append(None if value is None else text_or_base64(value))
    if r.left:
        raise ProtocolError("MySQL text row longer than its columns")
    return row


def encode_text_row(row: list[Any] | Doc) -> bytes:
    if isinstance(row, dict):
        return from_text_or_base64(row)
    return b"".join(b"\xfb" if v is None else lenenc_str(from_text_or_base64(v)) for v in row)


# binary values (rows of prepared statements, and their parameters) ---------------------


def _zero(text: str) -> bool:
    return not any(c.isdigit() and c != "0" for c in text)


def decode_value(r: Reader, kind: str, unsigned: bool) -> Any:
    if kind in _INT_SIZES:
        size = _INT_SIZES[kind]
        return r.uint(size) if unsigned else r.sint(size)
    if kind == "FLOAT":
        return float(struct.unpack("<f", r.take(4))[0])
    if kind == "DOUBLE":
        return float(struct.unpack("<d", r.take(8))[0])
    if kind == "NULL":
        return None
    if kind in _DATES:
        return _decode_date(r.take(r.uint(1)), kind)
    if kind == "TIME":
        return _decode_time(r.take(r.uint(1)))
    return text_or_base64(r.lenenc_required())


def encode_value(value: Any, kind: str, unsigned: bool) -> bytes:
    if kind in _INT_SIZES:
        return int(value).to_bytes(_INT_SIZES[kind], "little", signed=not unsigned)
    if kind == "FLOAT":
        return struct.pack("<f", value)
    if kind == "DOUBLE":
        return struct.pack("<d", value)
    if kind == "NULL":
        return b""
    if kind in _DATES:
        body = _encode_date(str(value))
        return bytes([len(body)]) + body
    if kind == "TIME":
        body = _encode_time(str(value))
        return bytes([len(body)]) + body
    return lenenc_str(from_text_or_base64(value))


def _decode_date(body: bytes, kind: str) -> str:
    """4 bytes: the date; 7: and the time; 11: and microseconds; 0: all zero."""
    if not body:
        return "0000-00-00" if kind in ("DATE", "NEWDATE") else "0000-00-00 00:00:00"
    if len(body) not in (4, 7, 11):
        raise ProtocolError("MySQL binary date of another size")
    year, month, day = struct.unpack_from("<HBB", body)
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if len(body) >= 7:
        text += " {:02d}:{:02d}:{:02d}".format(*body[4:7])
    if len(body) == 11:
        text += f".{int.from_bytes(body[7:11], 'little'):06d}"
    return text


def _encode_date(text: str) -> bytes:
    if _zero(text):
        return b""
    date, _, time = text.partition(" ")
    year, month, day = (int(p) for p in date.split("-"))
    out = struct.pack("<HBB", year, month, day)
    if time:
        clock, _, micro = time.partition(".")
        out += bytes(int(p) for p in clock.split(":"))
        if micro:
            out += int(micro.ljust(6, "0")).to_bytes(4, "little")
    return out


def _decode_time(body: bytes) -> str:
    """8 bytes: sign, days, hours, minutes, seconds; 12: and microseconds; 0: zero."""
    if not body:
        return "00:00:00"
    if len(body) not in (8, 12):
        raise ProtocolError("MySQL binary time of another size")
    negative, days, hours, minutes, seconds = struct.unpack_from("<BIBBB", body)
    text = f"{'-' if negative else ''}{days * 24 + hours:02d}:{minutes:02d}:{seconds:02d}"
    if len(body) == 12:
        text += f".{int.from_bytes(body[8:12], 'little'):06d}"
    return text


def _encode_time(text: str) -> bytes:
    if _zero(text):
        return b""
    negative = text.startswith("-")
    clock, _, micro = text.lstrip("-").partition(".")
    hours, minutes, seconds = (int(p) for p in clock.split(":"))
    out = struct.pack("<BIBBB", negative, hours // 24, hours % 24, minutes, seconds)
    if micro:
        out += int(micro.ljust(6, "0")).to_bytes(4, "little")
    return out


def param_types(columns: list[Doc]) -> list[tuple[int, int]]:
    """(type code, 0x80 if unsigned) of parameter definitions, as EXECUTE sends them."""
    if any("base64" in c for c in columns):
        return []
    return [(type_code(c["type"]), 0x80 if "UNSIGNED" in c["flags"] else 0) for c in columns]


def column_types(columns: list[Doc]) -> list[str]:
    """Each column's type name, `` UNSIGNED`` after it if so; [] if one was kept whole."""
    kinds = column_kinds(columns)
    return [k + (" UNSIGNED" if u else "") for k, u in kinds] if kinds else []


def kinds_of(types: list[str]) -> list[tuple[str, bool]]:
    """``column_types`` back to (type name, unsigned)."""
    return [(t.removesuffix(" UNSIGNED"), t.endswith(" UNSIGNED")) for t in types]


def column_kinds(columns: list[Doc]) -> list[tuple[str, bool]] | None:
    """(type name, unsigned) of each column; None if one was kept whole."""
    if any("base64" in c for c in columns):
        return None
    return [(c["type"], "UNSIGNED" in c["flags"]) for c in columns]


def decode_binary_row(data: bytes, kinds: list[tuple[str, bool]]) -> list[Any]:
    """A binary row: 0x00, the NULL bitmap (offset 2), then the values that are not NULL."""
    r = Reader(data)
    if r.uint(1) != 0:
        raise ProtocolError("MySQL binary row does not begin with 0x00")
    bitmap = r.take((len(kinds) + 9) // 8)
    row: list[Any] = []
    for i, (kind, unsigned) in enumerate(kinds):
        bit = i + 2
        if bitmap[bit // 8] >> (bit % 8) & 1:
            row.append(None)
        else:
            row.append(decode_value(r, kind, unsigned))
    if r.left:
        raise ProtocolError("MySQL binary row longer than its columns")
    return row


def encode_binary_row(row: list[Any] | Doc, kinds: list[tuple[str, bool]] | None) -> bytes:
    if isinstance(row, dict):
        return from_text_or_base64(row)
    assert kinds is not None
    bitmap = bytearray((len(kinds) + 9) // 8)
    values = bytearray()
    for i, (value, (kind, unsigned)) in enumerate(zip(row, kinds, strict=True)):
        if value is None:
            bit = i + 2
            bitmap[bit // 8] |= 1 << (bit % 8)
        else:
            values += encode_value(value, kind, unsigned)
    return b"\0" + bytes(bitmap) + bytes(values)


def row_checked(data: bytes, count: int, kinds: list[tuple[str, bool]] | None) -> Any:
    """A row decoded (text, or binary when ``kinds`` are given) or kept whole."""
    try:
        if kinds is None:
            row = decode_text_row(data, count)
            if encode_text_row(row) == data:
                return row
        else:
            row = decode_binary_row(data, kinds)
            if encode_binary_row(row, kinds) == data:
                return row
    except (ProtocolError, ValueError, struct.error, OverflowError):
        pass
    return {"base64": b64(data)}
