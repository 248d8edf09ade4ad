"""A test's egress ledger as text, for the JUnit ``<system-out>``: one line per connection
the service opened or used, per passthrough destination and per DNS lookup, saying what
kpy did with it. Pure: a Ledger in, a str out.

    kpy: egress during this test (2 connections, 1 lookup):
      #4 postgres 127.0.0.1:5432 (opened earlier): 3 calls served from mocks (mock-12, ...)
      #5 http 127.0.0.1:8090 (rates.example): 1 call served (mock-15), 1 refused:
          GET /v2/rates matched no mock
      passed through: 2 connections to 127.0.0.1:6390 (passthrough rule)
      dns A rates.example: served from a mock (mock-3)
"""

from __future__ import annotations

from collections.abc import Sequence

from kpy_ci.report.model import ConnectionUse, Ledger, LookupUse, PassedThrough

NAMES_SHOWN = 8
INDENT = "  "


def ledger_text(ledger: Ledger) -> str:
    """The block, ending with a line break; a test with no egress says so in one line."""
    connections = len(ledger.connections) + sum(p.connections for p in ledger.passed)
    if not connections and not ledger.lookups:
        return "kpy: egress during this test: none\n"
    counts = [_count(connections, "connection")]
    if ledger.lookups:
        counts.append(_count(len(ledger.lookups), "lookup"))
    lines = [f"kpy: egress during this test ({', '.join(counts)}):"]
    lines += [line for c in ledger.connections for line in connection_lines(c)]
    lines += [passed_line(p) for p in ledger.passed]
    lines += [lookup_line(lookup) for lookup in ledger.lookups]
    return "\n".join(lines[:1] + [INDENT + line for line in lines[1:]]) + "\n"


def connection_lines(c: ConnectionUse) -> list[str]:
    """``#4 postgres 127.0.0.1:5432: 3 calls served from mocks (mock-12, ...)``; when more
    than one call was refused, each goes on a line of its own below it."""
    head = f"#{c.connection} {c.protocol or 'tcp'} {c.destination}"
    notes = [n for n in (c.name, "opened earlier" if c.opened_earlier else "") if n]
    if notes:
        head += f" ({', '.join(notes)})"
    said = []
    if c.served:
        source = "" if c.refused else " from mocks"
        said.append(f"{_count(len(c.served), 'call')} served{source} ({_names(c.served)})")
    closing = ", then kpy closed the connection" if c.closed_by_kpy else ""
    more = [f"{INDENT * 2}{_refusal(call)}" for call in c.refused] if len(c.refused) > 1 else []
    if len(c.refused) == 1:
        said.append(f"1 refused: {_refusal(c.refused[0])}{closing}")
    elif c.refused:
        said.append(f"{len(c.refused)} refused{closing}:")
    elif closing:
        said.append("kpy closed the connection")
    return [f"{head}: {', '.join(said) or 'no call'}", *more]


def passed_line(p: PassedThrough) -> str:
    connections = _count(p.connections, "connection")
    return f"passed through: {connections} to {p.destination} (passthrough rule)"


def lookup_line(lookup: LookupUse) -> str:
    if lookup.mock:
        return f"dns {lookup.question}: served from a mock ({lookup.mock})"
    return f"dns {lookup.question}: refused: matched no mock (answered SERVFAIL)"


def _refusal(call: str) -> str:
    """A refused call, one line: the mock server's own reason, or ``... matched no mock``."""
    return call if call.startswith("kpy ") else f"{call} matched no mock"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
