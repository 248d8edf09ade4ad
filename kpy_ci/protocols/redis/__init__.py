"""Redis (RESP2 and RESP3) as one plug-in: ``resp.py`` is the wire format, ``recorder.py``
pairs commands with replies, ``replay.py`` matches commands to mocks and answers a client
from them."""

from __future__ import annotations

from kpy_ci.protocols.base import (
    Protocol,
    client_first,
    load_schema,
    nothing_local,
    unchanged,
)
from kpy_ci.protocols.redis.recorder import RedisRecorder, encode_response, redact_request, sniff
from kpy_ci.protocols.redis.replay import MATCHER, RedisMockServer

PROTOCOL = Protocol(
    name="redis",
    sniff=sniff,
    greets=client_first,
    edit_greeting=unchanged,
    answer_locally=nothing_local,
    starttls=nothing_local,
    recorder=RedisRecorder,
    encode_response=encode_response,
    byte_exact=True,
    matcher=MATCHER,
    mock_server=RedisMockServer,
    schema=load_schema(__name__),
    redact=redact_request,
)
