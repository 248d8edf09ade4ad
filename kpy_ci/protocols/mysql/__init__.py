"""MySQL and MariaDB (client/server protocol 4.1, handshake v10) as one plug-in, sans-I/O:

- ``packets.py``: framing, sequence ids, length-encoded integers and strings;
- ``flags.py``: capability, status and column flags by name;
- ``handshake.py``: the greeting (and ``edit_greeting``, ``greets``), HandshakeResponse41,
  authentication packets (auth switch, auth more data), COM_CHANGE_USER;
- ``results.py``: OK/ERR/EOF, column definitions, text and binary rows;
- ``responses.py``: a whole answer as one document, and ``encode_response``;
- ``commands.py``: the COM_* requests and the statements a connection prepares;
- ``recorder.py``: ``MysqlRecorder``; ``matching.py``: ``MATCHER`` and ``redact``;
- ``mock_server.py``: ``MysqlMockServer``; ``schema.json``: the documents' JSON Schema.

The client never speaks first (``sniff`` says no): kpy knows a MySQL connection by the
server's greeting (``greets``), which it relays edited (``edit_greeting``: no TLS, no
compression). MySQL needs nothing answered locally and has no STARTTLS kpy follows.
"""

from __future__ import annotations

from kpy_ci.protocols import base
from kpy_ci.protocols.mysql.handshake import edit_greeting, greets
from kpy_ci.protocols.mysql.matching import MATCHER, redact
from kpy_ci.protocols.mysql.mock_server import MysqlMockServer
from kpy_ci.protocols.mysql.recorder import NAME, MysqlRecorder
from kpy_ci.protocols.mysql.responses import encode_response

SCHEMA = base.load_schema(__name__)


def sniff(first_client_bytes: bytes) -> bool:
    """A MySQL client never speaks first."""
    return False


PROTOCOL = base.Protocol(
    name=NAME,
    sniff=sniff,
    greets=greets,
    edit_greeting=edit_greeting,
    answer_locally=base.nothing_local,
    starttls=base.nothing_local,
    recorder=MysqlRecorder,
    encode_response=encode_response,
    byte_exact=True,
    matcher=MATCHER,
    mock_server=MysqlMockServer,
    schema=SCHEMA,
    redact=redact,
)

__all__ = [
    "MATCHER",
    "NAME",
    "PROTOCOL",
    "SCHEMA",
    "MysqlMockServer",
    "MysqlRecorder",
    "edit_greeting",
    "encode_response",
    "greets",
    "redact",
    "sniff",
]
