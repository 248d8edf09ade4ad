r"""PostgreSQL at replay: how a request finds its mock (``MATCHER``) and a server that
answers a client from mocks (``PostgresMockServer``). Sans-I/O.

Matching is by SQL text and parameters, never by statement or portal name: drivers name
prepared statements differently from run to run (psycopg's ``_pg3_0`` may be ``_pg3_3``
next time). A Bind of a statement prepared earlier on the connection is matched by that
statement's SQL, as the recorder noted it. Whitespace runs in SQL count as one space.

The server accepts any client, whatever authentication the real server asked for: it
answers the StartupMessage with a recorded start-up (AuthenticationOk, ParameterStatus,
BackendKeyData, ReadyForQuery), as often as connections open; SSLRequest and GSSENCRequest
get 'N'. It answers a simple Query, a FunctionCall, or the extended messages up to Sync,
as one unit each, as the recorder cut them. A call no mock matches gets an ErrorResponse
(SQLSTATE XX000, "kpy: no recorded mock matches ...") and ReadyForQuery.

A client in pipeline mode sends a Flush and waits before its Sync: the server then answers
the messages so far from the mock whose unit began the same way (``partials``), and the rest
at the Sync if the unit went on as recorded (else an error, and a miss).

COPY ... FROM STDIN by a simple Query (psycopg 2 and 3, psql's \copy) goes the same way:
the CopyInResponse is sent from the mock whose unit began with that Query, and the rest
once the client's data, taken whole however it was cut into messages, is as recorded.

Not covered: COPY FROM STDIN through the extended protocol (asyncpg): a miss.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Hashable
from typing import Any

from kpy_ci.protocols.base import Doc, Matcher, MockSource, from_text_or_base64
from kpy_ci.protocols.postgres.framing import Framer, note_statement
from kpy_ci.protocols.postgres.messages import decode_message, decode_untyped, encode_message
from kpy_ci.trace import sql_key

MISS_CODE = "XX000"  # internal_error: the service sees a failed query, the test fails


def _message_key(m: Doc) -> Hashable:
    kind = m["type"]
    if kind == "Flush" or (kind == "Parse" and m.get("statement")):
        # a named statement is prepared once per connection, and which connection a pool
        # hands out differs from run to run: its SQL stays in the key (``sql``), not whether
        # this unit prepared it
        return None
    if kind in ("Query", "Parse"):
        return (kind, sql_key(m["sql"]), tuple(m.get("param_types", ())))
    if kind == "Bind":
        params = tuple(repr(p) for p in m.get("params", ()))
        formats = (tuple(m.get("param_formats", ())), tuple(m.get("result_formats", ())))
        return (kind, params, formats)
    if kind in ("Describe", "Close"):
        return (kind, "statement" if "statement" in m else "portal")
    if kind == "Execute":
        return (kind, m.get("max_rows", 0))
    return (kind, repr(sorted(m.items())))  # Sync, FunctionCall, COPY data, unknown types


def _keys(messages: list[Doc]) -> list[Hashable]:
    """The messages' keys; COPY data as one, however the client cut it into messages."""
    keys: list[Hashable] = []
    copied = bytearray()
    for m in messages:
        if m["type"] == "CopyData":
            copied += from_text_or_base64(m.get("data", ""))
            continue
        if copied:
            keys.append(("CopyData", bytes(copied)))
            copied.clear()
        if (k := _message_key(m)) is not None:
            keys.append(k)
    if copied:
        keys.append(("CopyData", bytes(copied)))
    return keys


def _sql_list(request: Doc) -> list[str | Doc]:
    sql = request.get("sql", [])
    return [sql] if isinstance(sql, str | dict) else list(sql)


def match_key(request: Doc) -> Hashable:
    messages = request.get("messages", [])
    if messages and messages[0]["type"] == "StartupMessage":
        return ("startup",)  # any start-up answers any client: kpy authenticates nobody
    keys = tuple(_keys(messages))
    key = (tuple(sql_key(s) for s in _sql_list(request)), keys)
    return ("partial", *key) if request.get("partial") else key


def partials(request: Doc) -> list[Hashable]:
    """The unit cut after each Flush in it, as a client in pipeline mode waits there: the
    messages so far, and the SQL they name (the recorded ``sql`` taken in order: one for
    each Query, Parse, and Bind of a statement not parsed in the unit)."""
    messages, sql = request.get("messages", []), _sql_list(request)
    out: list[Hashable] = []
    named, parsed = 0, set()
    for i, m in enumerate(messages):
        if m["type"] in ("Query", "Parse"):
            named += 1
            parsed.add(m.get("statement", ""))
        elif m["type"] == "Bind" and m.get("statement", "") not in parsed:
            named += 1
        if (m["type"] == "Flush" and i + 1 < len(messages)) or (
            m["type"] == "Query" and messages[i + 1 : i + 2] and messages[i + 1]["type"] in _COPY
        ):
            cut = {"messages": messages[: i + 1], "sql": sql[:named], "partial": True}
            out.append(match_key(cut))
    return out


def _param(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return repr(value)
    try:
        return "0x" + from_text_or_base64(value).hex()
    except ValueError:
        return repr(value)


def describe(request: Doc) -> str:
    messages = request.get("messages", [])
    if messages and messages[0]["type"] == "StartupMessage":
        p = messages[0].get("parameters", {})
        return f"start-up user={p.get('user')} database={p.get('database')}"
    sql = request.get("sql", [])
    text = "; ".join(sql_key(s) for s in ([sql] if isinstance(sql, str | dict) else sql))
    params = [_param(v) for m in messages if m["type"] == "Bind" for v in m.get("params", ())]
    kinds = ",".join(m["type"] for m in messages if m["type"] not in ("Query", "Flush"))
    shown = text or kinds or "(nothing)"
    return shown + (f" [{', '.join(params)}]" if params else "")


_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?(?:UPDATE|SHARE)\b|\bFOR\s+KEY\s+SHARE\b", re.I)
_WRITES = frozenset(
    {"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "CREATE", "ALTER", "DROP"}
    | {"COMMIT", "END"}  # a transaction's writes last only if it commits
    | {"GRANT", "REVOKE", "COMMENT", "CALL", "REFRESH", "CLUSTER", "REINDEX", "VACUUM"}
)


def is_write(sql: str) -> bool:
    """Whether a statement changes data: it begins with a writing verb, or is a WITH whose
    parts write. ``SELECT ... FOR UPDATE`` only locks; COPY ... TO only reads."""
    words = _LOCKS.sub(" ", _LITERALS.sub(" ", sql)).upper().split()
    if not words:
        return False
    head = words[0].lstrip("(")
    if head == "COPY":
        return _copy_direction(words[1:]) == "FROM"
    if head == "PREPARE":  # PREPARE TRANSACTION commits in two phases; PREPARE name does not
        return words[1:2] == ["TRANSACTION"]
    if head == "WITH":
        return any(w.strip("(") in {"INSERT", "UPDATE", "DELETE", "MERGE"} for w in words)
    return head in _WRITES


def _copy_direction(words: list[str]) -> str:
    """FROM or TO, the first outside parentheses: ``COPY (SELECT a FROM t) TO STDOUT``
    reads, whatever its query says."""
    depth = 0
    for word in words:
        if depth == 0 and word in ("FROM", "TO"):
            return word
        depth += word.count("(") - word.count(")")
    return ""


_SETUP = re.compile(
    r"(SHOW|SET|RESET|DISCARD)\b(?!\s+(TRANSACTION|CONSTRAINTS))"
    r"|SELECT\s+(1|(pg_catalog\.)?version\(\)|current_schema\(\)|current_database\(\)"
    r"|current_user|session_user|current_setting\([^()]*\)|pg_backend_pid\(\))\s*;?$",
    re.I,
)


def setup(request: Doc) -> bool:
    """Session settings and facts a driver or pool asks on each new connection (SQLAlchemy's
    version and schema, SHOW standard_conforming_strings, a pre-ping's SELECT 1)."""
    messages = request.get("messages", [])
    if messages and messages[0]["type"] == "StartupMessage":
        return True
    sql = request.get("sql", [])
    sql = [sql] if isinstance(sql, str | dict) else sql
    return bool(sql) and all(isinstance(s, str) and _SETUP.match(" ".join(s.split())) for s in sql)


def expected(request: Doc) -> bool:
    """A unit that runs a writing statement (preparing one runs nothing)."""
    runs = {"Query", "Execute", "FunctionCall"}
    if not any(m["type"] in runs for m in request.get("messages", ())):
        return False
    sql = request.get("sql", [])
    return any(isinstance(s, str) and is_write(s) for s in ([sql] if isinstance(sql, str) else sql))


UUID_OID, TIMESTAMP_OIDS = 2950, (1114, 1184)
_EPOCH_2000 = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


def _as_text(value: Any, oid: int | None) -> Any:
    """A binary parameter as text when it is (or, its type unknown, may be) a UUID or a
    timestamp: PostgreSQL's binary forms are 16 bytes, and microseconds since 2000."""
    try:
        data = from_text_or_base64(value)
    except ValueError:
        return value
    if len(data) == 16 and oid in (UUID_OID, None):
        return str(uuid.UUID(bytes=data))
    if len(data) == 8 and oid in (*TIMESTAMP_OIDS, None):
        micros = int.from_bytes(data, "big", signed=True)
        if -(10**17) < micros < 10**17:
            moment = _EPOCH_2000 + datetime.timedelta(microseconds=micros)
            return moment.isoformat() if oid != 1114 else moment.replace(tzinfo=None).isoformat()
    return value


def readable(request: Doc) -> Doc:
    """Binary parameters that may be UUIDs or timestamps given as text (psycopg 3 sends
    both in binary): types from the unit's Parse, else guessed from the size."""
    messages = request.get("messages", [])
    types: dict[str, list[int]] = {}
    out = []
    for m in messages:
        if m["type"] == "Parse":
            types[str(m.get("statement", ""))] = list(m.get("param_types", ()))
        elif m["type"] == "Bind" and 1 in m.get("param_formats", ()):
            oids = types.get(str(m.get("statement", "")), [])
            formats = m.get("param_formats", [])
            params = []
            for i, value in enumerate(m.get("params", ())):
                binary = (formats[i] if len(formats) > 1 else formats[0]) == 1 if formats else False
                oid = oids[i] if i < len(oids) and oids[i] else None
                params.append(_as_text(value, oid) if binary and value is not None else value)
            m = {**m, "params": params}
        out.append(m)
    return {**request, "messages": out}


MATCHER = Matcher(match_key, describe, expected, setup, partials, readable)


_ASYNC = frozenset({"NoticeResponse", "ParameterStatus", "NotificationResponse"})
_COPY = frozenset({"CopyData", "CopyDone", "CopyFail"})
_COPY_FROM_STDIN = re.compile(r"\s*COPY\b.*\bFROM\s+STDIN\b", re.I | re.S)


def split_response(requests: list[Doc], responses: list[Doc]) -> list[int]:
    """For each request message of a unit, where its answer ends among the response's
    messages (ParseComplete for a Parse, rows and CommandComplete for an Execute...; after
    an ErrorResponse nothing until the Sync): how much of the answer a client that waits
    after that message has asked for."""
    ends: list[int] = []
    j, failed = 0, False

    def take(*names: str) -> bool:
        nonlocal j, failed
        while j < len(responses) and responses[j]["type"] in _ASYNC:
            j += 1
        if j < len(responses) and responses[j]["type"] == "ErrorResponse":
            j, failed = j + 1, True
        elif j < len(responses) and responses[j]["type"] in names:
            j += 1
            return True
        return False

    for m in requests:
        kind = m["type"]
        if kind == "Sync" or kind in ("CopyDone", "CopyFail"):
            while j < len(responses) and responses[j]["type"] != "ReadyForQuery":
                j += 1
            j, failed = min(j + 1, len(responses)), False
        elif kind == "Query":  # up to its ReadyForQuery, or the CopyInResponse asking for data
            while j < len(responses) and responses[j]["type"] not in (
                "ReadyForQuery",
                "CopyInResponse",
            ):
                j += 1
            j = min(j + 1, len(responses))
        elif kind == "CopyData" or failed or kind == "Flush":
            pass
        elif kind in _COMPLETES:
            take(_COMPLETES[kind])
        elif kind == "Describe":
            if "statement" in m:
                take("ParameterDescription")
            if not failed:
                take("RowDescription", "NoData")
        elif kind == "Execute":
            while not failed and take("DataRow"):
                pass
            if not failed:
                take("CommandComplete", "EmptyQueryResponse", "PortalSuspended")
        ends.append(j)
    return ends


_COMPLETES = {"Parse": "ParseComplete", "Bind": "BindComplete", "Close": "CloseComplete"}


def error(message: str) -> bytes:
    """An ErrorResponse with kpy's code: the service sees a failed query."""
    fields = {"type": "ErrorResponse", "severity": "ERROR", "severity_nonlocalized": "ERROR"}
    return encode_message(fields | {"code": MISS_CODE, "message": message})


def error_response(message: str, status: str) -> bytes:
    """An ErrorResponse and the ReadyForQuery after it, as a server sends on a failure."""
    return error(message) + encode_message(ready("E" if status in ("T", "E") else "I"))


def ready(status: str) -> Doc:
    return {"type": "ReadyForQuery", "status": status}


def response_bytes(response: Doc) -> bytes:
    """What to send for a recorded response: its ``raw`` bytes when the recording kept
    them (its messages did not re-encode exactly), else its messages encoded."""
    if "raw" in response:
        return from_text_or_base64(response["raw"])
    return b"".join(encode_message(m) for m in response.get("messages", ()))


def _named_parses(request: Doc) -> int:
    return sum(m["type"] == "Parse" and bool(m.get("statement")) for m in request["messages"])


def _prepared_here(recorded: Doc, live: Doc, response: Doc) -> Doc:
    """The recorded response, with as many ParseComplete as the live unit has Parses of
    named statements: a statement the recording prepared in this unit may have been
    prepared earlier on this connection now, or the other way round."""
    extra = _named_parses(live) - _named_parses(recorded)
    if not extra or "raw" in response:
        return response
    messages = list(response.get("messages", ()))
    if extra > 0:
        messages = [{"type": "ParseComplete"}] * extra + messages
    else:
        for _ in range(-extra):
            first = next((i for i, m in enumerate(messages) if m["type"] == "ParseComplete"), None)
            if first is not None:
                del messages[first]
    return {**response, "messages": messages}


class PostgresMockServer:
    def __init__(self, source: MockSource) -> None:
        self.source = source
        self.closed = False
        self._framer = Framer(client=True)
        self._statements: dict[str, str | Doc] = {}
        self._unit: list[Doc] = []
        self._sql: list[str | Doc] = []
        self._parsed: set[str] = set()
        self._status = "I"  # the transaction status of the last ReadyForQuery sent
        # a pipelined unit answered in parts, at each Flush: its mock, how much is sent
        self._streaming: Doc | None = None
        self._answered = 0  # response messages sent of it
        self._ends: list[int] = []  # where the answer to each of its messages ends
        self._failed = False  # an error was sent in this unit: nothing more until Sync
        self._copying = False  # in a COPY FROM STDIN: the client's data is coming

    def opening(self) -> bytes:
        return b""  # the client speaks first

    def idle(self) -> bytes:
        return b""

    def client_data(self, data: bytes) -> bytes:
        out = bytearray()
        for frame in self._framer.feed(data, 0):
            if self.closed:
                break
            if not frame.tag:
                out += self._untyped(decode_untyped(frame.raw))
            elif frame.tag == "X":
                self.closed = True
            elif frame.tag == "H":
                out += self._flush() if self._unit else b""  # a lone Flush asks nothing
            elif frame.tag != "p":  # a password kpy never asked for
                out += self._typed(decode_message(frame.raw, frontend=True))
        return bytes(out)

    def _untyped(self, doc: Doc) -> bytes:
        kind = doc["type"]
        if kind in ("SSLRequest", "GSSENCRequest"):
            return b"N"
        if kind == "CancelRequest":  # nothing runs long enough here to cancel
            self.closed = True
            return b""
        mock = self.source.serve({"messages": [doc]})
        if mock is None:
            self.closed = True
            return error_response("kpy: no recorded start-up to answer this connection", "I")
        return self._sent(response_bytes(mock["response"]), mock["response"])

    def _typed(self, doc: Doc) -> bytes:
        if doc["type"] in _COPY:
            if not self._copying:
                return b""  # the server ignores COPY data outside a COPY
            self._unit.append(doc)
            if doc["type"] == "CopyData":
                return b""
            self._copying = False
            request, self._unit, self._sql = self._request(), [], []
            streaming, self._streaming = self._streaming, None
            assert streaming is not None
            return self._rest(streaming, request)
        self._unit.append(doc)
        note_statement(doc, self._sql, self._parsed, self._statements)
        if doc["type"] == "Query" and _COPY_FROM_STDIN.match(str(doc.get("sql", ""))):
            return self._copy_in()
        if doc["type"] not in ("Query", "Sync", "FunctionCall"):
            return b""
        request = self._request()
        self._unit, self._sql, self._parsed = [], [], set()
        streaming, failed, self._streaming, self._failed = (
            self._streaming,
            self._failed,
            None,
            False,
        )
        if failed:  # the error was sent at a Flush: its ReadyForQuery now
            self._status = "E" if self._status in ("T", "E") else "I"
            return encode_message(ready(self._status))
        if streaming is not None:
            return self._rest(streaming, request)
        mock = self.source.serve(request)
        if mock is None:
            return self._missed(request)
        response = _prepared_here(mock["request"], request, mock["response"])
        return self._sent(response_bytes(response), response)

    def _request(self, partial: bool = False) -> Doc:
        request: Doc = {"messages": list(self._unit)}
        if self._sql:
            request["sql"] = self._sql[0] if len(self._sql) == 1 else list(self._sql)
        if partial:
            request["partial"] = True
        return request

    def _flush(self) -> bytes:
        """The client waits before its Sync (pipeline mode): answer what it sent so far,
        from the mock whose unit began the same way (found at the first Flush)."""
        self._unit.append({"type": "Flush"})
        if self._failed:
            return b""
        if self._streaming is None and not self._stream_partial():
            return self._fail(f"kpy: no recorded mock matches {describe(self._request())}")
        assert self._streaming is not None
        recorded = self._streaming["request"]["messages"]
        so_far = len(self._unit)
        if [_message_key(m) for m in recorded[:so_far]] != [_message_key(m) for m in self._unit]:
            self.source.miss(self._request())
            return self._fail(f"kpy: no recorded mock matches {describe(self._request())}")
        return self._part(self._ends[so_far - 1])

    def _copy_in(self) -> bytes:
        """COPY ... FROM STDIN: answer up to the CopyInResponse of the mock whose unit began
        with this Query; the rest once the client's data is all there (CopyDone)."""
        if not self._stream_partial():
            request, self._unit, self._sql = self._request(), [], []
            return self._missed(request)
        self._copying = True
        return self._part(self._ends[0])

    def _stream_partial(self) -> bool:
        """Find the mock whose unit began as this one has so far, to answer it in parts;
        where the answer to each of its messages ends (``split_response``)."""
        self._streaming = self.source.serve(self._request(partial=True))
        self._answered = 0
        if self._streaming is None:
            return False
        recorded = self._streaming["request"]["messages"]
        self._ends = split_response(recorded, self._streaming["response"]["messages"])
        return True

    def _rest(self, mock: Doc, request: Doc) -> bytes:
        """The Sync of a unit answered in parts: the rest, if it went on as recorded."""
        if match_key(request) != match_key(mock["request"]):
            self.source.miss(request)
            return self._missed(request)
        self._streaming = mock
        data = self._part(len(mock["response"]["messages"]))
        self._streaming = None
        return self._sent(data, mock["response"])

    def _missed(self, request: Doc) -> bytes:
        """An ErrorResponse and ReadyForQuery for a unit no mock answers (noted already)."""
        data = error_response(f"kpy: no recorded mock matches {describe(request)}", self._status)
        self._status = "E" if self._status in ("T", "E") else "I"
        return data

    def _part(self, end: int) -> bytes:
        assert self._streaming is not None
        messages = self._streaming["response"]["messages"][self._answered : end]
        self._answered = max(self._answered, end)
        return b"".join(encode_message(m) for m in messages)

    def _fail(self, message: str) -> bytes:
        """An error in the middle of a unit: the server says nothing more until Sync."""
        self._failed, self._streaming = True, None
        return error(message)

    def _sent(self, data: bytes, response: Doc) -> bytes:
        for m in reversed(response.get("messages", ())):
            if m.get("type") == "ReadyForQuery":
                self._status = str(m.get("status", "I"))
                break
        return data
