"""HTTP/1.x as one plug-in: ``message.py`` reads both directions with h11 and encodes
responses, ``replay.py`` matches calls to mocks and answers a client from them. The
ingress records test cases with the same recorder."""

from __future__ import annotations

from kpy_ci.protocols.base import (
    Protocol,
    client_first,
    load_schema,
    nothing_local,
    unchanged,
)
from kpy_ci.protocols.http.message import HttpRecorder, encode_response, redact_request, sniff
from kpy_ci.protocols.http.replay import MATCHER, HttpMockServer

PROTOCOL = Protocol(
    name="http",
    sniff=sniff,
    greets=client_first,
    edit_greeting=unchanged,
    answer_locally=nothing_local,
    starttls=nothing_local,
    recorder=HttpRecorder,
    encode_response=encode_response,
    byte_exact=False,  # bodies are stored decoded, re-framed at replay (message.py)
    matcher=MATCHER,
    mock_server=HttpMockServer,
    schema=load_schema(__name__),
    redact=redact_request,
)
