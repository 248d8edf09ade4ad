"""PostgreSQL, protocol v3, as one plug-in: ``recorder.py`` cuts a connection into
exchanges, ``messages.py`` and ``framing.py`` turn messages into documents and back,
``replay.py`` matches requests to mocks and answers a client from them."""

from __future__ import annotations

from kpy_ci.protocols.base import Protocol, as_recorded, client_first, load_schema, unchanged
from kpy_ci.protocols.postgres.recorder import (
    PostgresRecorder,
    answer_locally,
    encode_response,
    sniff,
    starttls,
)
from kpy_ci.protocols.postgres.replay import MATCHER, PostgresMockServer

PROTOCOL = Protocol(
    name="postgres",
    sniff=sniff,
    greets=client_first,
    edit_greeting=unchanged,
    answer_locally=answer_locally,
    starttls=starttls,
    recorder=PostgresRecorder,
    encode_response=encode_response,
    byte_exact=True,
    matcher=MATCHER,
    mock_server=PostgresMockServer,
    schema=load_schema(__name__),
    redact=as_recorded,  # passwords and SASL messages are never decoded (recorder.py)
)
