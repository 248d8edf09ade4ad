"""Trace context a tracer adds to a service's calls: inert for matching. Pure functions.

sqlcommenter (Google's, OpenTelemetry's, Django's, Sequelize's, knex's...) appends to a
statement a comment of ``key='value'`` pairs, ``/*traceparent='00-4bf9...-01',route='/x'*/``,
whose trace id is new on every call, and whose presence says nothing of what the statement
does. Such a comment is left out of a statement's match key. Comments that change what runs
are kept: optimizer hints (``/*+ ... */``) and MySQL's versioned code (``/*! ... */``), as is
any comment not in that shape. Outbound HTTP headers (``traceparent``, ``tracestate``,
``baggage``, ``b3``...) never enter an HTTP call's match key (``protocols/http/replay.py``).
"""

from __future__ import annotations

import re
from typing import Any

_PAIR = r"[A-Za-z_][\w.-]*\s*=\s*'(?:[^'\\]|\\.)*'"
SQLCOMMENTER = re.compile(rf"/\*(?![+!])\s*{_PAIR}(?:\s*,\s*{_PAIR})*\s*\*/")


def without_trace_comments(sql: str) -> str:
    """The statement with its sqlcommenter comments taken out."""
    if "/*" not in sql:
        return sql
    return SQLCOMMENTER.sub(" ", sql)


def sql_key(value: Any) -> str:
    """A statement as a match key holds it (PostgreSQL's and MySQL's alike): whitespace runs
    as one space, trace comments out; a statement that is not text, as its repr."""
    if not isinstance(value, str):
        return repr(value)
    return " ".join(without_trace_comments(value).split())
