"""Values a service makes up as it runs: a new UUID, the current time. They differ on every
run, so a call that carries one can never equal its recording. Pure functions.

kpy matches such calls by consistent substitution, never by ignoring a value:

- a value counts as generated only if it looks like a UUID, or like a timestamp inside the
  run's own time window (the recording's for a recorded value, the replay's for a live
  one), and appears in no recorded reply and no test's request (then it came from
  outside the service, and must be equal);
- a recorded generated value may stand for a live one at the same place in the call, one
  to one: once ``r`` stood for ``l``, ``r`` stands for nothing else and nothing else for
  ``l``; a response that echoes ``l`` where the recording had ``r`` is then equal too.

Where a value may be is found in text (any string of a request or reply) by pattern; a
protocol that carries values in binary (PostgreSQL parameters) first gives them as text
(``Matcher.readable``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b", re.I
)
TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
TOKEN = re.compile(f"{UUID.pattern}|{TIMESTAMP.pattern}", re.I)
MASK = "\x00generated\x00"
SLACK_SECONDS = 120.0  # a time this far outside a run still belongs to it (clocks, queues)


def tokens(value: Any) -> Iterator[str]:
    """Every UUID- or timestamp-like text in a value (YAML-ready data, or a match key of
    tuples), in order."""
    if isinstance(value, str):
        yield from (m.group(0) for m in TOKEN.finditer(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from tokens(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tokens(item)


def masked(value: Any) -> Any:
    """The value with every UUID- or timestamp-like text replaced by one mask: what stays
    equal between two runs of a call whose generated values differ."""
    if isinstance(value, str):
        return TOKEN.sub(MASK, value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, tuple):
        return tuple(masked(v) for v in value)
    return value


def instant(text: str) -> float | None:
    """A timestamp as epoch seconds (no zone: UTC), or None."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class Window:
    """When a run happened, epoch seconds."""

    start: float
    end: float

    def holds(self, text: str) -> bool:
        t = instant(text)
        return t is not None and self.start - SLACK_SECONDS <= t <= self.end + SLACK_SECONDS


@dataclass
class Substitutions:
    """Which recorded generated value stands for which live one, one to one."""

    recorded: Window | None
    """None: the set does not say when it was recorded, so no time is taken as generated."""
    seen: set[str] = field(default_factory=set)
    """Values from outside the service (recorded replies, tests' requests): never generated."""
    forward: dict[str, str] = field(default_factory=dict)
    backward: dict[str, str] = field(default_factory=dict)

    def note_seen(self, value: Any) -> None:
        self.seen.update(t.lower() for t in tokens(value))

    def pairs(self, recorded: Any, live: Any, now: Window) -> dict[str, str] | None:
        """The substitutions that make ``live`` equal ``recorded`` (match keys of the same
        call but for generated values), or None if it is another call."""
        if masked(recorded) != masked(live):
            return None
        new: dict[str, str] = {}
        for r, v in zip(tokens(recorded), tokens(live), strict=True):
            if r == v:
                continue
            if not self._may_stand(r, v, now) or new.get(r, v) != v:
                return None
            new[r] = v
        if len(set(new.values())) != len(new):
            return None
        return new

    def _may_stand(self, r: str, v: str, now: Window) -> bool:
        """Whether recorded ``r`` may stand for live ``v``."""
        if self.forward.get(r, v) != v or self.backward.get(v, r) != r:
            return False
        if r.lower() in self.seen or v.lower() in self.seen:
            return False
        if UUID.fullmatch(r) and UUID.fullmatch(v):
            return True
        return self.recorded is not None and self.recorded.holds(r) and now.holds(v)

    def commit(self, pairs: dict[str, str]) -> None:
        for r, v in pairs.items():
            self.forward[r] = v
            self.backward[v] = r

    def apply(self, value: Any) -> Any:
        """A recorded value with the generated values the replay used in their place."""
        if not self.forward:
            return value
        if isinstance(value, str):
            return TOKEN.sub(lambda m: self.forward.get(m.group(0), m.group(0)), value)
        if isinstance(value, dict):
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value
