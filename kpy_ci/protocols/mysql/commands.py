"""The client's COM_* requests, decoded for people, and the statements a connection
prepares (which COM_STMT_EXECUTE, CLOSE, RESET, FETCH and SEND_LONG_DATA name by id only:
the documents name them by SQL too). Sans-I/O.

A request is ``{"command": NAME, ...}``: ``query`` and ``prepare`` have ``sql``;
``execute`` has ``sql``, ``statement_id``, ``flags``, ``iterations``, ``params`` (typed
values, decoded with the types the client sends, or those it sent last for the statement)
and ``param_types``; LOCAL INFILE data the client sends goes to ``local_infile_data``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpy_ci.protocols.base import Doc, ProtocolError, text_or_base64
from kpy_ci.protocols.mysql import flags, responses
from kpy_ci.protocols.mysql.handshake import decode_change_user
from kpy_ci.protocols.mysql.packets import Reader
from kpy_ci.protocols.mysql.results import b64, decode_value, type_name

COMMANDS = {
    0x00: "sleep",
    0x01: "quit",
    0x02: "init_db",
    0x03: "query",
    0x04: "field_list",
    0x05: "create_db",
    0x06: "drop_db",
    0x07: "refresh",
    0x08: "shutdown",
    0x09: "statistics",
    0x0A: "process_info",
    0x0C: "process_kill",
    0x0D: "debug",
    0x0E: "ping",
    0x0F: "time",
    0x11: "change_user",
    0x16: "prepare",
    0x17: "execute",
    0x18: "send_long_data",
    0x19: "close_statement",
    0x1A: "reset_statement",
    0x1B: "set_option",
    0x1C: "fetch",
    0x1F: "reset_connection",
    0xFA: "bulk_execute",
}
STREAMS = {0x12: "binlog_dump", 0x15: "register_slave", 0x1E: "binlog_dump_gtid"}

ANSWERS = {
    "quit": responses.NONE,
    "send_long_data": responses.NONE,
    "close_statement": responses.NONE,
    "query": responses.RESULT,
    "execute": responses.RESULT,
    "bulk_execute": responses.RESULT,
    "process_info": responses.RESULT,
    "prepare": responses.PREPARE,
    "field_list": responses.FIELD_LIST,
    "change_user": responses.AUTH,
    "fetch": responses.FETCH,
}
PARAMETER_COUNT_AVAILABLE = 0x08  # an EXECUTE flag (MySQL 8, with query attributes)
LAST_PREPARED = 0xFFFFFFFF  # MariaDB: the statement prepared last on the connection


@dataclass
class Statement:
    sql: str | Doc
    params: int
    types: list[tuple[int, int]] = field(default_factory=list)  # (type, flags) last bound
    long_data: dict[int, bytearray] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    """Its result's column types (``results.column_types``), as last sent: an EXECUTE's
    answer may leave them out (MariaDB's CACHE_METADATA, MySQL's optional metadata)."""


@dataclass
class Statements:
    """The statements prepared on a connection, by id."""

    by_id: dict[int, Statement] = field(default_factory=dict)
    last: int | None = None

    def add(
        self,
        statement_id: int,
        sql: str | Doc,
        params: int,
        types: list[tuple[int, int]] | None = None,
        columns: list[str] | None = None,
    ) -> None:
        """A statement prepared; ``types``, from its parameter definitions, decode an
        EXECUTE that sends none (new-params-bound 0) before any that does."""
        self.by_id[statement_id] = Statement(sql, params, list(types or []))
        self.by_id[statement_id].columns = list(columns or [])
        self.last = statement_id

    def get(self, statement_id: int) -> Statement | None:
        if statement_id == LAST_PREPARED and self.last is not None:
            statement_id = self.last
        return self.by_id.get(statement_id)


def _text(data: bytes) -> str | Doc:
    return text_or_base64(data)


def decode_command(data: bytes, capabilities: int, statements: Statements) -> Doc:
    """One command packet's payload (sequence id 0) as a request document."""
    if not data:
        raise ProtocolError("MySQL command packet is empty")
    code = data[0]
    if code in STREAMS:
        raise ProtocolError(f"MySQL {STREAMS[code]} (a replication stream) is not recorded")
    name = COMMANDS.get(code)
    if name is None:
        return {"command": f"0x{code:02x}", "data": _text(data[1:])}
    r = Reader(data, 1)
    if name == "query":
        doc: Doc = {"command": "query"}
        if capabilities & flags.QUERY_ATTRIBUTES:
            attributes = _query_attributes(r)
            if attributes:
                doc["attributes"] = attributes
        doc["sql"] = _text(r.rest())
        return doc
    if name == "prepare":
        return {"command": "prepare", "sql": _text(r.rest())}
    if name == "execute":
        return _execute(r, statements, capabilities)
    if name in ("close_statement", "reset_statement", "fetch", "send_long_data"):
        statement_id = r.uint(4)
        statement = statements.get(statement_id)
        doc = {"command": name}
        if statement is not None:
            doc["sql"] = statement.sql
        doc["statement_id"] = statement_id
        if name == "fetch":
            doc["rows"] = r.uint(4)
        elif name == "send_long_data":
            param = r.uint(2)
            chunk = r.rest()
            doc.update(param=param, data=_text(chunk))
            if statement is not None:
                statement.long_data.setdefault(param, bytearray()).extend(chunk)
        elif name == "close_statement":
            statements.by_id.pop(statement_id, None)
        elif statement is not None:
            statement.long_data.clear()
        return doc
    if name in ("init_db", "create_db", "drop_db"):
        return {"command": name, "database": _text(r.rest())}
    if name == "field_list":
        table = r.nul()
        return {"command": name, "table": _text(table), "wildcard": _text(r.rest())}
    if name == "change_user":
        return decode_change_user(data, capabilities)
    if name == "set_option":
        return {"command": name, "option": r.uint(2)}
    if name == "process_kill":
        return {"command": name, "connection_id": r.uint(4)}
    if name in ("refresh", "shutdown") and r.left:
        return {"command": name, "options": r.uint(1)}
    doc = {"command": name}
    if r.left:
        doc["data"] = _text(r.rest())
    return doc


def _query_attributes(r: Reader) -> dict[str, Any]:
    """MySQL 8's query attributes before a COM_QUERY's text (CLIENT_QUERY_ATTRIBUTES)."""
    count = r.lenenc() or 0
    r.lenenc()  # parameter set count: always 1
    if not count:
        return {}
    nulls = r.take((count + 7) // 8)
    if r.uint(1) != 1:
        raise ProtocolError("MySQL query attributes without their types")
    kinds = []
    for _ in range(count):
        code, type_flags = r.uint(1), r.uint(1)
        kinds.append((code, type_flags, r.lenenc_required().decode("utf-8", "replace")))
    out: dict[str, Any] = {}
    for i, (code, type_flags, name) in enumerate(kinds):
        null = nulls[i // 8] >> (i % 8) & 1
        out[name] = None if null else decode_value(r, type_name(code), bool(type_flags & 0x80))
    return out


def _execute(r: Reader, statements: Statements, capabilities: int) -> Doc:
    """COM_STMT_EXECUTE. With CLIENT_QUERY_ATTRIBUTES (MySQL 8), a parameter count may
    come first (flag PARAMETER_COUNT_AVAILABLE) and each type is followed by a name."""
    statement_id = r.uint(4)
    doc: Doc = {"command": "execute"}
    statement = statements.get(statement_id)
    if statement is not None:
        doc["sql"] = statement.sql
    doc["statement_id"] = statement_id
    doc["flags"] = r.uint(1)
    doc["iterations"] = r.uint(4)
    if statement is None:
        if r.left:
            doc["params_data"] = {"base64": b64(r.rest())}
        return doc
    params = statement.params
    attributes = bool(capabilities & flags.QUERY_ATTRIBUTES)
    if attributes and doc["flags"] & PARAMETER_COUNT_AVAILABLE:
        params = r.lenenc() or 0
    if not params:
        doc["params"] = []
        return doc
    nulls = r.take((params + 7) // 8)
    bound = r.uint(1)
    doc["new_params_bound"] = bool(bound)
    if bound:
        statement.types, names = [], []
        for _ in range(params):
            statement.types.append((r.uint(1), r.uint(1)))
            if attributes:
                names.append(r.lenenc_required().decode("utf-8", "replace"))
        if any(names):
            doc["param_names"] = names
    if len(statement.types) != params:
        doc["params_data"] = {"base64": b64(r.rest())}
        return doc
    doc["param_types"] = [
        type_name(code) + (" UNSIGNED" if type_flags & 0x80 else "")
        for code, type_flags in statement.types
    ]
    values: list[Any] = []
    for i, (code, type_flags) in enumerate(statement.types):
        if nulls[i // 8] >> (i % 8) & 1:
            values.append(None)
        elif i in statement.long_data:
            values.append(_text(bytes(statement.long_data[i])))
        else:
            values.append(decode_value(r, type_name(code), bool(type_flags & 0x80)))
    statement.long_data.clear()
    doc["params"] = values
    if r.left:
        doc["params_extra"] = {"base64": b64(r.rest())}
    return doc


def answer_kind(request: Doc) -> str:
    return ANSWERS.get(str(request.get("command")), responses.SIMPLE)
