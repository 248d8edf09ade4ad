"""How a MySQL request finds its mock at replay (``MATCHER``), and ``redact``. Pure
functions over request documents.

- the set-up (``connect``) matches by user and database: not by attributes (``_pid``,
  ``_client_version``...), capabilities or anything of the authentication;
- COM_QUERY and COM_STMT_PREPARE by their SQL, whitespace runs counted as one space and
  sqlcommenter comments left out (trace.py);
- COM_STMT_EXECUTE by its statement's SQL and its parameters, never by statement id (the
  mock server hands out ids of its own); CLOSE, RESET, FETCH, SEND_LONG_DATA likewise;
- LOAD DATA LOCAL INFILE by its SQL and the file the client sent; its ``partials`` key,
  without the file, finds it when the server must ask for the file first.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Hashable
from typing import Any

from kpy_ci.protocols.base import REDACTED, Doc, Matcher, from_text_or_base64
from kpy_ci.trace import sql_key, without_trace_comments

GREETING_KEY = ("connect", "greeting")


def _value(value: Any) -> Hashable:
    if isinstance(value, dict):
        return ("bytes", value.get("base64"))
    if isinstance(value, float):
        return ("float", repr(value))
    return value if not isinstance(value, list) else tuple(_value(v) for v in value)


def match_key(request: Doc) -> Hashable:
    command = str(request.get("command"))
    if request.get("partial") == "greeting":
        return GREETING_KEY
    if command in ("connect", "change_user"):
        return (command, request.get("user"), request.get("database") or "")
    if command in ("query", "prepare"):
        key: tuple[Hashable, ...] = (command, sql_key(request.get("sql")))
        if "attributes" in request:
            key += (tuple(sorted((k, _value(v)) for k, v in request["attributes"].items())),)
        if request.get("partial") == "local_infile":
            return (*key, "local_infile")
        if "local_infile_data" in request:
            key += ("local_infile", _value(request["local_infile_data"]))
        return key
    if command == "execute":
        params = tuple(_value(p) for p in request.get("params", ()))
        raw = _value(request.get("params_data")) if "params_data" in request else None
        key = (command, sql_key(request.get("sql")), params, raw, request.get("flags", 0))
        if request.get("partial") == "local_infile":
            return (*key, "local_infile")
        if "local_infile_data" in request:
            key += ("local_infile", _value(request["local_infile_data"]))
        return key
    if command in ("close_statement", "reset_statement", "fetch"):
        return (command, sql_key(request.get("sql")), request.get("rows"))
    if command == "send_long_data":
        data = _value(request.get("data"))
        return (command, sql_key(request.get("sql")), request.get("param"), data)
    rest = tuple(
        sorted(
            (k, _value(v))
            for k, v in request.items()
            if k not in ("command", "auth_responses", "auth_response")
        )
    )
    return (command, rest)


def partials(request: Doc) -> list[Hashable]:
    """LOAD DATA LOCAL INFILE: the request before the client sent its file (the server
    asks for it first); a set-up: the greeting, asked before the client says anything."""
    if request.get("command") == "connect":
        return [GREETING_KEY]
    if "local_infile_data" in request:
        cut = {k: v for k, v in request.items() if k != "local_infile_data"}
        return [match_key({**cut, "partial": "local_infile"})]
    return []


def _param(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict):
        try:
            return "0x" + from_text_or_base64(value).hex()
        except ValueError:
            return repr(value)
    return repr(value)


def describe(request: Doc) -> str:
    command = str(request.get("command"))
    if command in ("connect", "change_user"):
        return f"{command} user={request.get('user')} database={request.get('database') or ''}"
    if "sql" in request:
        text = sql_key(request["sql"])
        if command == "query":
            return text
        params = request.get("params")
        shown = f"{command} {text}"
        return shown + (f" [{', '.join(_param(p) for p in params)}]" if params else "")
    extra = " ".join(
        f"{k}={v}" for k, v in request.items() if k not in ("command",) and not isinstance(v, dict)
    )
    return f"{command} {extra}".strip()


_LITERALS = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|#[^\n]*", re.S)
_COMMENTS = re.compile(r"/\*(?![!+]).*?\*/", re.S)
_WRITES = frozenset(
    {"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "LOAD", "CALL", "DO", "HANDLER"}
    | {"CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "GRANT", "REVOKE", "IMPORT"}
    | {"COMMIT", "XA", "OPTIMIZE", "REPAIR", "ANALYZE", "INSTALL", "UNINSTALL", "FLUSH"}
)


def _words(sql: str) -> list[str]:
    text = _COMMENTS.sub(" ", _LITERALS.sub(" ", sql))
    return text.replace("(", " ( ").replace(";", " ; ").upper().split()


def _statements(sql: str) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for word in _words(sql):
        if word == ";":
            out.append([])
        else:
            out[-1].append(word)
    return [s for s in out if s]


def is_write(sql: str) -> bool:
    """Whether one of the statements changes data: it begins with a writing verb
    (INSERT, UPDATE, DELETE, REPLACE, DDL, COMMIT, LOAD DATA, CALL...), or is a WITH whose
    body writes. SELECT ... FOR UPDATE only locks."""
    for words in _statements(sql):
        head = words[0].lstrip("(")
        if head == "/*!" and len(words) > 1:
            head = words[1]
        if head in _WRITES:
            return True
        if head == "WITH" and any(w in ("INSERT", "UPDATE", "DELETE", "REPLACE") for w in words):
            return True
        if head == "SELECT" and "INTO" in words and ("OUTFILE" in words or "DUMPFILE" in words):
            return True
    return False


def expected(request: Doc) -> bool:
    """A write must be made again; a read, a SET, a SHOW, a prepare, a ping need not."""
    command = request.get("command")
    if command in ("create_db", "drop_db", "refresh", "shutdown", "process_kill"):
        return True
    if command not in ("query", "execute"):
        return False
    sql = request.get("sql")
    return isinstance(sql, str) and is_write(sql)


_SETUP_SQL = re.compile(
    r"(SET\s+(?!(GLOBAL\s+)?TRANSACTION\b|PASSWORD\b|ROLE\b|DEFAULT\s+ROLE\b)"
    r"|SHOW\s+(GLOBAL\s+|SESSION\s+)?(VARIABLES|STATUS|COLLATION|CHARACTER\s+SET|CHARSET"
    r"|ENGINES|WARNINGS|DATABASES)\b"
    r"|SELECT\s+(@@[\w.]+(\s+AS\s+\w+)?|VERSION\(\)|DATABASE\(\)|SCHEMA\(\)|USER\(\)"
    r"|CURRENT_USER(\(\))?|CONNECTION_ID\(\)|1)(\s*,\s*(@@[\w.]+(\s+AS\s+\w+)?|VERSION\(\)"
    r"|DATABASE\(\)|USER\(\)|CURRENT_USER(\(\))?|CONNECTION_ID\(\)))*\s*(LIMIT\s+1\s*)?;?$"
    r"|USE\s)",
    re.I,
)


def setup(request: Doc) -> bool:
    """The set-up and what does not change: connect, COM_PING, COM_INIT_DB, session SETs
    (SET NAMES, autocommit, session variables), SHOW VARIABLES, SELECT @@version and the
    like; also COM_QUIT, which answers nothing."""
    command = request.get("command")
    if command in ("connect", "ping", "init_db", "quit", "set_option", "reset_connection"):
        return True
    if command != "query":
        return False
    sql = request.get("sql")
    if not isinstance(sql, str):
        return False
    parts = [" ".join(p.split()) for p in without_trace_comments(sql).split(";")]
    parts = [p for p in parts if p]
    return bool(parts) and all(_SETUP_SQL.match(p) for p in parts)


def reusable(request: Doc, response: Doc) -> bool:
    """Whether a recorded exchange may answer again and again: the set-up and what does
    not change, preparing and closing statements, unless it failed."""
    if not (
        setup(request)
        or request.get("command") in ("prepare", "close_statement", "reset_statement")
    ):
        return False
    return not any("error" in item for item in response.get("results", ()))


def _as_text(value: Any) -> Any:
    """16 bytes that are not printable text (a BINARY(16) UUID) as the UUID's text form."""
    if isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) != 16 or value.isprintable():
            return value
    elif isinstance(value, dict):
        try:
            data = from_text_or_base64(value)
        except ValueError:
            return value
        if len(data) != 16:
            return value
    else:
        return value
    return str(uuid.UUID(bytes=data))


def readable(request: Doc) -> Doc:
    """Parameters that are bytes (a BINARY(16) UUID) as text; times are text already."""
    if not request.get("params"):
        return request
    return {**request, "params": [_as_text(p) for p in request["params"]]}


def redact(request: Doc) -> Doc:
    """The request with every secret it could carry replaced: the auth response of a
    HandshakeResponse or COM_CHANGE_USER, and what the client sent while authenticating."""
    if request.get("command") not in ("connect", "change_user"):
        return request
    out = dict(request)
    if out.get("auth_response"):
        out["auth_response"] = REDACTED
    if "auth_responses" in out:
        out["auth_responses"] = [REDACTED for _ in out["auth_responses"]]
    return out


MATCHER = Matcher(match_key, describe, expected, setup, partials, readable)
