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

import base64
import datetime
import email.utils
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b", re.I
)
ISO_TIME = re.compile(  # ISO 8601, SQL and MySQL DATETIME: a T or a space, any fraction and zone
    r"\b(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:[.,](?P<fraction>\d{1,9}))?"
    r"(?P<zone> ?(?:Z|[+-]\d{2}(?::?\d{2})?)(?![\d:]))?(?!\d)"
)
HTTP_DATE = re.compile(  # RFC 1123, as HTTP's Date, Expires and cookies give it
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2}[ -](?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
    r"|Nov|Dec)[ -]\d{4} \d{2}:\d{2}:\d{2} GMT\b"
)
EPOCH = re.compile(r"(?<![\d.])1[5-9]\d{8}(?:\d{3})?(?![\d.])")  # seconds or ms, 2017 to 2033
TIMESTAMP = re.compile(f"{ISO_TIME.pattern}|{HTTP_DATE.pattern}|{EPOCH.pattern}")
JWT = re.compile(r"\beyJ[\w-]{2,}\.eyJ[\w-]{2,}\.[\w-]*")  # header.payload.signature, JSON
RANDOMIZED_SIGNATURES = ("ES", "PS")  # ECDSA and RSA-PSS sign the same claims differently
TOKEN = re.compile(f"{JWT.pattern}|{UUID.pattern}|{TIMESTAMP.pattern}", re.I)
MASK = "\x00generated\x00"
SLACK_SECONDS = 120.0  # a time this far outside a run still belongs to it (clocks, queues)
CLOCK_SLACK_SECONDS = 2.0
"""Under the replay clock a time the service makes is the recorded one, give or take how
much longer or shorter the test runs (``Substitutions.slack`` adds the test's own length)."""


def _epoch(value: object) -> bool:
    """Whether a number in the data may be a Unix time (seconds or milliseconds)."""
    return type(value) is int and EPOCH.fullmatch(str(value)) is not None


def tokens(value: Any) -> Iterator[str]:
    """Every UUID- or time-like text in a value (YAML-ready data, or a match key of
    tuples), in order; a number that may be a Unix time as its digits."""
    if isinstance(value, str):
        yield from (m.group(0) for m in TOKEN.finditer(value))
    elif _epoch(value):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tokens(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tokens(item)


def masked(value: Any) -> Any:
    """The value with every UUID- or time-like text (and Unix-time number) replaced by one
    mask: what stays equal between two runs of a call whose generated values differ."""
    if isinstance(value, str):
        return TOKEN.sub(MASK, value)
    if _epoch(value):
        return MASK
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, tuple):
        return tuple(masked(v) for v in value)
    return value


def instant(text: str) -> float | None:
    """A time in any of the shapes above as epoch seconds (no zone: UTC), or None."""
    text = text.strip()
    if EPOCH.fullmatch(text):
        return int(text) / (1000 if len(text) == 13 else 1)
    if HTTP_DATE.fullmatch(text):
        return email.utils.parsedate_to_datetime(text.replace("-", " ")).timestamp()
    m = ISO_TIME.fullmatch(text)
    if m is None:
        return None
    zone = (m["zone"] or "").strip()
    if zone in ("", "Z"):
        zone = "+00:00"
    elif len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    fraction = (m["fraction"] or "0")[:6].ljust(6, "0")
    try:
        moment = datetime.datetime.fromisoformat(f"{m['date']}T{m['time']}.{fraction}{zone}")
    except ValueError:
        return None
    return moment.timestamp()


@dataclass(frozen=True)
class Window:
    """When a run happened, epoch seconds."""

    start: float
    end: float

    def holds(self, text: str) -> bool:
        t = instant(text)
        return t is not None and self.start - SLACK_SECONDS <= t <= self.end + SLACK_SECONDS


@dataclass(frozen=True)
class Exchange:
    """A call the service made (``outbound``: a mock) or a request it answered (a test),
    kept as the generated-looking values of each half (a set may hold millions)."""

    started: float
    request: frozenset[str]
    response: frozenset[str]
    outbound: bool

    @classmethod
    def of(cls, started: float, request: Any, response: Any, outbound: bool) -> Exchange | None:
        """None when neither half holds any such value."""
        asked, answered = (frozenset(t.lower() for t in tokens(v)) for v in (request, response))
        return cls(started, asked, answered, outbound) if asked or answered else None

    def parts(self) -> tuple[tuple[frozenset[str], bool], tuple[frozenset[str], bool]]:
        """Its two halves in order, each with whether the service said it."""
        return (self.request, self.outbound), (self.response, not self.outbound)


@dataclass
class Substitutions:
    """Which recorded generated value stands for which live one, one to one."""

    recorded: Window | None
    """None: the set does not say when it was recorded, so no time is taken as generated."""
    seen: set[str] = field(default_factory=set)
    """Values from outside the service (recorded replies, tests' requests): never generated."""
    forward: dict[str, str] = field(default_factory=dict)
    backward: dict[str, str] = field(default_factory=dict)
    clock: bool = False
    """The replay clock moves the service's clock (clock.py): a live time stands for a
    recorded one only within ``slack`` of it, wherever the recorded one lies."""
    slack: float = CLOCK_SLACK_SECONDS
    """How far the times of the running test may be from the recorded ones, under the
    replay clock; also how far apart the shifts of the times new in one call may be."""

    def note_seen(self, value: Any) -> None:
        self.seen.update(t.lower() for t in tokens(value))

    def note_origins(self, exchanges: Iterable[Exchange]) -> None:
        """Learn, from a recording's exchanges in the order they happened, which values came
        from outside the service: those it was told (a reply, a client's request) before it
        had said them itself (a call it made, a response it gave). A value the service made
        and a reply echoed (INSERT ... RETURNING), or a client sent back (its token), is
        still the service's own."""
        said: set[str] = set()
        for exchange in exchanges:
            for found, by_service in exchange.parts():
                if by_service:
                    said |= found
                else:
                    self.seen |= found - said

    def pairs(self, recorded: Any, live: Any, now: Window) -> dict[str, str] | None:
        """The substitutions that make ``live`` equal ``recorded`` (match keys of the same
        call but for generated values), or None if it is another call. The times new in
        the call must all have moved by about as much (a clock moves them together: a token
        whose lifetime changed has its expiry moved by more than its issue time)."""
        if masked(recorded) != masked(live):
            return None
        new: dict[str, str] = {}
        for r, v in zip(tokens(recorded), tokens(live), strict=True):
            if r == v:
                continue
            if not self._may_stand(r, v, now) or new.get(r, v) != v:
                return None
            if kind(r) == "jwt":
                claims = self._claims(r, v, now)
                if claims is None or any(new.get(a, b) != b for a, b in claims.items()):
                    return None
                new |= claims
            new[r] = v
        if len(set(new.values())) != len(new):
            return None
        shifts = [_shift(r, v) for r, v in new.items() if r not in self.forward]
        moved = [d for d in shifts if d is not None]
        if moved and max(moved) - min(moved) > self.slack:
            return None
        return new

    def _claims(self, r: str, v: str, now: Window) -> dict[str, str] | None:
        """The substitutions that make JWT ``v`` the same token as ``r`` (the same header,
        the same claims but for generated values), or None. Its signature is judged
        through them: new claims are signed anew; the same claims signed otherwise by a
        deterministic algorithm (HS*, RS*) mean another key."""
        (head_r, claims_r, sig_r), (head_v, claims_v, sig_v) = _jwt(r), _jwt(v)
        if head_r is None or head_r != head_v:
            return None
        pairs = self.pairs(claims_r, claims_v, now)
        if pairs is None:
            return None
        randomized = str(head_r.get("alg", "")).startswith(RANDOMIZED_SIGNATURES)
        if not pairs and claims_r == claims_v and sig_r != sig_v and not randomized:
            return None
        return pairs

    def take(self, recorded: Any, live: Any, now: Window) -> bool:
        """Whether ``live`` equals ``recorded`` but for generated values; if so, they stand
        for each other from now on."""
        pairs = self.pairs(recorded, live, now)
        if pairs is not None:
            self.commit(pairs)
        return pairs is not None

    def _may_stand(self, r: str, v: str, now: Window) -> bool:
        """Whether recorded ``r`` may stand for live ``v``."""
        if self.forward.get(r, v) != v or self.backward.get(v, r) != r:
            return False
        if r.lower() in self.seen or v.lower() in self.seen:
            return False
        if kind(r) != kind(v):
            return False
        if kind(r) in ("uuid", "jwt"):  # a JWT's claims are judged by _claims
            return True
        if self.recorded is None:
            return False
        if self.clock:
            shift = _shift(r, v)
            return shift is not None and abs(shift) <= self.slack
        return self.recorded.holds(r) and now.holds(v)

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
        if _epoch(value):
            return int(self.forward.get(str(value), str(value)))
        if isinstance(value, dict):
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value


def kind(token: str) -> str:
    """``jwt``, ``uuid``, ``epoch`` (a Unix time), ``http`` (an HTTP date) or ``iso``."""
    if JWT.fullmatch(token):
        return "jwt"
    if UUID.fullmatch(token):
        return "uuid"
    if EPOCH.fullmatch(token):
        return "epoch"
    return "http" if HTTP_DATE.fullmatch(token) else "iso"


def _jwt(token: str) -> tuple[dict[str, Any] | None, Any, str]:
    """A JWT's header and claims, decoded (None: not JSON), and its signature."""
    head, claims, signature = token.split(".", 2)
    try:
        decoded = [
            json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (head, claims)
        ]
    except ValueError:
        return None, None, signature
    return (decoded[0] if isinstance(decoded[0], dict) else None), decoded[1], signature


def _shift(r: str, v: str) -> float | None:
    """How far live time ``v`` is from recorded ``r``, seconds (None: not both times)."""
    a, b = instant(r), instant(v)
    return None if a is None or b is None else b - a
